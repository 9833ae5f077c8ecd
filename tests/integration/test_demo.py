"""``make demo``'s materialization step: every domain from landed files to marts, no services needed."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_demo_builds_every_domain_from_landed_files(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "orchestration" / "dagster.local.yaml").read_text())
    env = {
        **os.environ,
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "AFLUENTE_LANDING_DIR": str(landing),
        "AFLUENTE_LANDING_SETTLE_SECONDS": "0",
        "DAGSTER_HOME": str(home),
        # No services: the demo must not need them.
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "MONGO_URI": "mongodb://127.0.0.1:1/",
        "SEARCH_URL": "http://127.0.0.1:1",
    }
    _run(["-m", "generators.exports", "--rows", "3000", "--files", "1", "--format", "csv",
          "--out", str(landing / "exports"), "--seed", "1"], env)  # fmt: skip
    _run(["-m", "generators.commerce", "--events", "3000", "--out", str(landing / "commerce"),
          "--bad-share", "0.01", "--no-progress"], env)  # fmt: skip
    _run(["-m", "generators.usage", "--docs", "2000", "--out", str(landing / "usage"),
          "--format", "jsonl", "--bad-share", "0.01"], env)  # fmt: skip

    out = _run(["-m", "orchestration.demo"], env)
    assert "FAILED" not in out, out
    assert out.count(": ok") == 4  # three landed files + one staging/marts run

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        ledger = dict(con.sql("SELECT domain, rows_loaded + rows_rejected FROM raw.landing_files").fetchall())
        assert ledger == {"exports": 3000, "commerce": 3000, "usage": 2000}
        for table in (
            "mart.mv_resumo_pais",
            "mart.commerce_summary",
            "mart.commerce_daily_metrics",
            "mart.usage_by_user",
            "mart.usage_daily",
        ):
            assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, table
        events = con.execute("SELECT COUNT(*) FROM stg.commerce_events").fetchone()[0]
        dead = con.execute("SELECT COUNT(*) FROM raw.commerce_events_dead_letter").fetchone()[0]
        assert events + dead == 3000 and dead == 30
