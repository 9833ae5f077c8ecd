"""Commerce pipeline from landed JSONL files, on DuckDB and on the real PostgreSQL.

The real file-drop sensor turns files into partitions of ``raw/commerce_event_files``; the rows land
in ``raw.commerce_events`` (the table Kafka batches also feed); the SQL models are built once,
then again incrementally after a second file; every mart is compared with values computed
independently from the generator's intended events.
"""

from pathlib import Path

from dagster import AssetKey, DagsterInstance, evaluate_automation_conditions, materialize

from generators.commerce import GeneratedEvent, write_jsonl_files
from orchestration.commerce import raw_commerce_event_files
from resources.warehouse import WarehouseResource
from tests.integration.test_commerce_helpers import (
    age,
    assert_marts,
    build_models,
    commerce_graph,
    resources_for,
    rows,
    sample_events,
    tick_files,
    valid,
)


def _drop(events: list[GeneratedEvent], landing: Path, name: str) -> Path:
    _, paths = write_jsonl_files(
        iter(events), landing / "commerce", files=1, per_file=len(events), prefix=name
    )
    return age(paths[0])


def _ingest_pending(instance: DagsterInstance, resources: dict) -> list[str]:
    keys = tick_files(instance, resources)
    for key in keys:
        result = materialize(
            [raw_commerce_event_files], partition_key=key, instance=instance, resources=resources
        )
        assert result.success
    return keys


def test_jsonl_files_to_marts_exact_values_with_incremental_second_file(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    resources = resources_for(warehouse, landing)
    generated = sample_events(3000, bad_share=0.02)
    first, second = generated[:1800], generated[1800:]
    # The same event delivered again in the second file (a producer retry): kept once.
    duplicate = next(e for e in first if e.valid)
    second = [*second, duplicate]
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    _drop(first, landing, "day_one")
    (junk := landing / "commerce" / "not_json.jsonl").write_bytes(b"\x00\x01binary\x00junk")
    age(junk)
    assert len(_ingest_pending(instance, resources)) == 2
    build_models(instance, resources)
    assert_marts(warehouse, valid(first))

    _drop(second, landing, "day_two")
    assert len(_ingest_pending(instance, resources)) == 1
    models = build_models(instance, resources)
    everything = valid(generated)
    assert_marts(warehouse, everything)
    assert len(rows(warehouse, "SELECT event_date FROM mart.commerce_daily_metrics")) == 2

    # Staging merged the second file incrementally: one row per event_id, the first copy kept.
    merged = [
        m
        for m in models.get_asset_materialization_events()
        if m.asset_key == AssetKey(["stg", "commerce_events"])
    ]
    assert merged and merged[0].materialization.metadata["action"].value == "merged"
    (counts,) = rows(
        warehouse,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM stg.commerce_events",
    )
    assert counts["n"] == counts["ids"] == len(everything)
    (raw_counts,) = rows(warehouse, "SELECT COUNT(*) AS n FROM raw.commerce_events")
    assert raw_counts["n"] == len(everything) + 1  # the duplicate line is kept raw, deduplicated in staging

    # Every malformed line is in the dead-letter table with its file line and a reason.
    bad_first = [i + 1 for i, e in enumerate(first) if not e.valid]
    dead = rows(
        warehouse,
        "SELECT source_line, reason, raw_content FROM raw.commerce_events_dead_letter "
        "WHERE ingest_source LIKE :name ORDER BY source_line",
        {"name": "day_one%"},
    )
    assert [d["source_line"] for d in dead] == bad_first
    assert all(d["reason"] and d["raw_content"] for d in dead)

    # The unreadable file is quarantined with its reason, and recorded in the landing ledger.
    quarantined = list((landing / "commerce" / "_quarantine").glob("*not_json.jsonl.reason.txt"))
    assert quarantined and "binary content" in quarantined[0].read_text()
    statuses = {
        r["status"] for r in rows(warehouse, "SELECT status FROM raw.landing_files WHERE domain = 'commerce'")
    }
    assert statuses == {"loaded", "quarantined"}


def test_reloading_a_file_changes_nothing(warehouse: WarehouseResource, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    resources = resources_for(warehouse, landing)
    generated = sample_events(600, seed=5)
    _drop(generated, landing, "once")
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    (key,) = _ingest_pending(instance, resources)
    before = rows(warehouse, "SELECT COUNT(*) AS n FROM raw.commerce_events")
    again = materialize([raw_commerce_event_files], partition_key=key, instance=instance, resources=resources)
    assert again.success
    assert rows(warehouse, "SELECT COUNT(*) AS n FROM raw.commerce_events") == before
    assert before[0]["n"] == sum(1 for e in generated if e.valid)


def test_a_landed_file_triggers_the_staging_refresh(tmp_path: Path) -> None:
    """The file run records a materialization of raw/commerce_events: eager staging reacts to it."""
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    landing = tmp_path / "landing"
    resources = resources_for(warehouse, landing)
    _drop(sample_events(200, seed=9), landing, "trigger")
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    graph = commerce_graph(resources)
    first = evaluate_automation_conditions(defs=graph, instance=instance)
    _ingest_pending(instance, resources)
    second = evaluate_automation_conditions(defs=graph, instance=instance, cursor=first.cursor)
    assert second.get_requested_partitions(AssetKey(["stg", "commerce_events"])) == {None}
