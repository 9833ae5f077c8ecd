"""The code location loads and follows the project's conventions."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, Definitions

from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)


def test_code_location_loads_as_the_webserver_and_daemon_load_it(tmp_path: Path) -> None:
    """Their loader also refuses a module holding more than one Definitions object."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},  # a fresh clone has no .dagster_home yet
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_every_asset_has_group_owner_kind_and_table_name() -> None:
    specs = list(defs.resolve_all_asset_specs())
    assert specs
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.group_name and spec.group_name != "default", name
        assert spec.owners, name
        assert spec.kinds, name
        assert len(spec.key.path) == 2 and spec.key.path[0] in {"source", "raw", "stg", "mart", "search"}, (
            name
        )
        where = {"search": "index_name", "source": "settings"}.get(spec.key.path[0], "dagster/table_name")
        assert spec.metadata.get(where), name


SOURCES = {
    "source/landing_exports": ("file", {"raw/exportacao", "raw/exportacao_rejects"}),
    "source/landing_commerce": ("file", {"raw/commerce_event_files", "raw/commerce_event_file_rejects"}),
    "source/kafka_commerce_events": ("kafka", {"raw/commerce_events", "raw/commerce_events_dead_letter"}),
    "source/landing_usage": ("file", {"raw/usage_event_files", "raw/usage_event_files_rejects"}),
    "source/mongo_usage_events": ("mongodb", {"raw/usage_events", "raw/usage_events_rejects"}),
    "source/kafka_subscriptions_commands": ("kafka", {"raw/user_events", "raw/user_events_dead_letter"}),
    "source/landing_subscriptions": (
        "file",
        {"raw/subscription_event_files", "raw/subscription_event_file_rejects"},
    ),
}


def test_every_feed_starts_at_an_external_source_naming_its_setting() -> None:
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    sources = {key: spec for key, spec in specs.items() if key.startswith("source/")}
    assert set(SOURCES) <= set(sources)
    for key, source in sources.items():
        assert len(source.kinds) == 1 and source.kinds <= {"file", "kafka", "mongodb"}, key
        assert all(name in (source.description or "") for name in source.metadata["settings"].split(", "))
    for key, (kind, readers) in SOURCES.items():
        source = specs[key]
        assert source.kinds == {kind}, key
        readers_found = {k for k, spec in specs.items() if source.key in {d.asset_key for d in spec.deps}}
        assert readers_found == readers, key
    # Every raw asset reads one source: the lineage graph starts at the sources.
    for key, spec in specs.items():
        if key.startswith("raw/"):
            assert {d.asset_key.path[0] for d in spec.deps} == {"source"}, key


def test_export_lineage() -> None:
    graph = {spec.key: {dep.asset_key for dep in spec.deps} for spec in defs.resolve_all_asset_specs()}
    assert graph[AssetKey(["stg", "exportacao"])] == {AssetKey(["raw", "exportacao"])}
    for report in ("mv_resumo_pais", "mv_resumo_geral", "mv_resumo_setor"):
        assert graph[AssetKey(["mart", report])] == {AssetKey(["stg", "exportacao"])}


def test_sensors_and_schedules_are_on_by_default() -> None:
    assert {s.name for s in defs.sensors} >= {"export_file_drop_sensor", "automation_sensor"}
    assert all(str(s.default_status).endswith("RUNNING") for s in defs.sensors)
    assert all(str(s.default_status).endswith("RUNNING") for s in defs.schedules)


def test_domain_lineage_reaches_marts_and_indices() -> None:
    graph = {spec.key: {dep.asset_key for dep in spec.deps} for spec in defs.resolve_all_asset_specs()}
    assert AssetKey(["raw", "commerce_events"]) in graph[AssetKey(["stg", "commerce_events"])]
    assert AssetKey(["stg", "commerce_events"]) in graph[AssetKey(["stg", "commerce_session_days"])]
    assert AssetKey(["stg", "commerce_session_days"]) in graph[AssetKey(["mart", "commerce_daily_metrics"])]
    assert {AssetKey(["raw", "usage_events"]), AssetKey(["raw", "usage_event_files"])} <= graph[
        AssetKey(["stg", "usage_events"])
    ]
    assert AssetKey(["mart", "usage_by_user"]) in graph[AssetKey(["search", "usage_top_users"])]


def test_every_domain_has_its_sensors_jobs_and_schedules() -> None:
    assert {s.name for s in defs.sensors} == {
        "export_file_drop_sensor",
        "commerce_kafka_offsets_sensor",
        "commerce_file_drop_sensor",
        "usage_mongo_watermark_sensor",
        "usage_file_drop_sensor",
        "subscriptions_kafka_offsets_sensor",
        "subscriptions_file_drop_sensor",
        "automation_sensor",
        "run_failure_incidents_sensor",
        "incident_upkeep_sensor",
        "run_worker_watchdog_sensor",
        "aggregate_freshness_sensor",
        "system_logs_sensor",
    }
    assert {s.name for s in defs.schedules} >= {
        "refresh_export_reports_daily",
        "rebuild_usage_insight_indices_hourly",
        "commerce_data_tests_schedule",
    }
    assert defs.resolve_job_def("commerce_kafka_ingest")


def test_streaming_refresh_leaves_model_tests_to_the_data_tests_job() -> None:
    """The catch-up refresh builds every commerce model without their checks; the scheduled job runs them."""
    from dagster import AssetKey

    from orchestration.commerce import commerce_data_tests_job, commerce_kafka_defs

    (refresh_job,) = [
        j for j in commerce_kafka_defs.jobs or [] if j.name == "commerce_kafka_ingest_and_refresh"
    ]

    graph = defs.resolve_asset_graph()
    raw = AssetKey(["raw", "commerce_events"])
    models = {
        k for k in graph.get_all_asset_keys() if k.path[0] in ("stg", "mart") and "commerce" in k.path[1]
    }
    model_checks = {k for k in graph.asset_check_keys if k.asset_key in models}
    assert len(models) >= 10 and len(model_checks) > 50

    refresh = refresh_job.selection
    assert models | {raw} <= refresh.resolve(graph)
    assert {k.asset_key for k in refresh.resolve_checks(graph)} == {raw}  # its reconciliation only

    tests = commerce_data_tests_job.selection
    assert tests.resolve(graph) == set()
    assert tests.resolve_checks(graph) == model_checks
    schedule = defs.resolve_schedule_def("commerce_data_tests_schedule")
    assert schedule.job_name == "commerce_data_tests" and schedule.cron_schedule == "*/5 * * * *"


def test_loading_the_code_location_does_not_import_pandas() -> None:
    """Every run process and the code server import the location: pandas (~1.8 s) waits until used."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, orchestration.definitions; print('pandas loaded:', 'pandas' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, check=True)
    assert out.stdout.strip().splitlines()[-1] == "pandas loaded: False"


def test_assets_named_alike_show_their_layer() -> None:
    """raw/exportacao and stg/exportacao are both drawn as 'exportacao': their layer kind tells them apart."""
    specs = list(defs.resolve_all_asset_specs())
    layer_kind = {"raw": "bronze", "stg": "silver", "mart": "gold"}
    for spec in specs:
        layer = spec.key.path[0]
        kinds_of_layers = spec.kinds & set(layer_kind.values())
        assert kinds_of_layers == ({layer_kind[layer]} if layer in layer_kind else set()), spec.key
    names: dict[str, set[str]] = {}
    for spec in specs:
        names.setdefault(spec.key.path[-1], set()).add(spec.key.path[0])
    assert names["exportacao"] == {"raw", "stg"} and names["usage_events"] == {"raw", "stg"}


def test_commerce_data_tests_skip_until_every_commerce_model_was_built(tmp_path: Path) -> None:
    """Early in make demo the 5-minute schedule fired before the models existed: 130 checks failed."""
    from dagster import AssetMaterialization, DagsterInstance, RunRequest, SkipReason, build_schedule_context

    from orchestration.commerce import COMMERCE_MODEL_KEYS, commerce_data_tests_schedule

    assert {"stg/commerce_events", "mart/commerce_summary"} <= {
        k.to_user_string() for k in COMMERCE_MODEL_KEYS
    }
    with DagsterInstance.local_temp(tempdir=str(tmp_path)) as instance:
        skipped = commerce_data_tests_schedule(build_schedule_context(instance=instance))
        assert isinstance(skipped, SkipReason) and "never built" in (skipped.skip_message or "")
        for key in COMMERCE_MODEL_KEYS:
            instance.report_runless_asset_event(AssetMaterialization(asset_key=key))
        assert isinstance(commerce_data_tests_schedule(build_schedule_context(instance=instance)), RunRequest)
