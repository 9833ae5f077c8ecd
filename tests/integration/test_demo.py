"""``make demo``'s materialization step: the real daemon's sensors build every domain from landed files.

No service is needed (Kafka, MongoDB and the search engine point at closed ports, SEARCH_ENABLED=false
as in ``make demo``). The demo must end green: every run launched by a sensor as the daemon launches it
(the sensor's job, ``dagster/sensor_name``, run key), all successful, no failed check, ``/health`` ok,
and the lineage starting at the source assets.
"""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
from fastapi.testclient import TestClient

from api.app import create_app
from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[2]
FILE_SENSORS = (
    "export_file_drop_sensor",
    "commerce_file_drop_sensor",
    "usage_file_drop_sensor",
    "subscriptions_file_drop_sensor",
)
SOURCES_OF_RAW = {
    "raw/exportacao": "source/landing_exports",
    "raw/commerce_event_files": "source/landing_commerce",
    "raw/commerce_events": "source/kafka_commerce_events",
    "raw/usage_event_files": "source/landing_usage",
    "raw/usage_events": "source/mongo_usage_events",
}

pytestmark = pytest.mark.timeout(900)


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=840
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    return done.stdout


def test_demo_ends_green_with_the_sensors_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = tmp_path / "landing"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "orchestration" / "dagster.local.yaml").read_text())
    warehouse_url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    demo_env = {
        "WAREHOUSE_URL": warehouse_url,
        "AFLUENTE_LANDING_DIR": str(landing),
        "AFLUENTE_LANDING_SETTLE_SECONDS": "0",
        "DAGSTER_HOME": str(home),
        # No services: the demo must not need them.
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "MONGO_URI": "mongodb://127.0.0.1:1/",
        "SEARCH_URL": "http://127.0.0.1:1",
        "SEARCH_ENABLED": "false",
    }
    env = {**os.environ, **demo_env}
    _run(["-m", "generators.exports", "--rows", "3000", "--files", "1", "--format", "csv",
          "--out", str(landing / "exports"), "--seed", "1"], env)  # fmt: skip
    _run(["-m", "generators.commerce", "--events", "3000", "--out", str(landing / "commerce"),
          "--bad-share", "0.01", "--days", "3", "--no-progress"], env)  # fmt: skip
    _run(["-m", "generators.usage", "--docs", "2000", "--out", str(landing / "usage"),
          "--format", "jsonl", "--bad-share", "0.01"], env)  # fmt: skip
    _run(["-m", "generators.subscriptions", "--users", "300", "--days", "30",
          "--out", str(landing / "subscriptions"), "--files", "1"], env)  # fmt: skip

    # Below the subprocess timeout: the demo stops its daemon itself (a killed demo cannot).
    out = _run(["-m", "orchestration.demo", "--timeout", "780"], env)
    assert "demo data ready" in out, out

    for key, value in demo_env.items():
        monkeypatch.setenv(key, value)
    with DagsterInstance.get() as instance:
        runs = [record.dagster_run for record in instance.get_run_records()]
        # Every run is a sensor's run, as the daemon launches it, and succeeded.
        assert runs and all(run.status == DagsterRunStatus.SUCCESS for run in runs), [
            (run.job_name, run.status) for run in runs
        ]
        by_sensor: dict[str, list] = {}
        for run in runs:
            if "dagster/sensor_name" in run.tags:
                by_sensor.setdefault(run.tags["dagster/sensor_name"], []).append(run)
            else:  # the daemon's schedules may fire meanwhile (commerce data tests every 5 minutes)
                assert "dagster/schedule_name" in run.tags, (run.job_name, run.tags)
        assert set(by_sensor) == {*FILE_SENSORS, "automation_sensor"}, out
        for name in FILE_SENSORS:
            (run,) = by_sensor[name]  # one landed file per feed: one run
            assert run.job_name == defs.resolve_sensor_def(name).job_name
            assert run.tags["dagster/run_key"] == run.tags["dagster/partition"]
        assert {run.job_name for run in by_sensor["automation_sensor"]} == {"__ASSET_JOB"}
        # No failed check in any run.
        failed = [
            event.dagster_event.event_specific_data.asset_check_key
            for run in runs
            for event in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
            if not event.dagster_event.event_specific_data.passed
        ]
        assert failed == []
        checked = sum(
            len(instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION))
            for run in runs
        )
        assert checked > 50  # the file reconciliations and the models' data tests did run

    with TestClient(create_app(warehouse_url)) as client:
        health = client.get("/health")
        insights = client.get("/insights/top-users")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.json()
    freshness = health.json()["checks"]["freshness"]
    assert freshness["stale"] == [] and freshness["never"] == []
    assert insights.status_code == 503 and "SEARCH_ENABLED=false" in insights.json()["detail"]

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        ledger = dict(con.sql("SELECT domain, rows_loaded + rows_rejected FROM raw.landing_files").fetchall())
        assert ledger.keys() == {"exports", "commerce", "usage", "subscriptions"}
        assert (ledger["exports"], ledger["commerce"], ledger["usage"]) == (3000, 3000, 2000)
        for table in (
            "mart.mv_resumo_pais",
            "mart.commerce_summary",
            "mart.commerce_daily_metrics",
            "mart.usage_by_user",
            "mart.usage_daily",
        ):
            assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, table
        watched = {key for (key,) in con.execute("SELECT asset_key FROM ops.freshness").fetchall()}
        assert watched and not any(key.startswith("search/") for key in watched)
        events = con.execute("SELECT COUNT(*) FROM stg.commerce_events").fetchone()[0]
        dead = con.execute("SELECT COUNT(*) FROM raw.commerce_events_dead_letter").fetchone()[0]
        assert events + dead == 3000 and dead == 30


def test_lineage_starts_at_the_source_assets() -> None:
    """The graph the UI draws: each raw asset downstream of the external source it reads."""
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    for raw, source in SOURCES_OF_RAW.items():
        source_spec = specs[AssetKey.from_user_string(source)]
        assert source_spec.kinds and source_spec.metadata.get("settings"), source
        assert AssetKey.from_user_string(source) in {
            dep.asset_key for dep in specs[AssetKey.from_user_string(raw)].deps
        }
