"""Benchmark: 1M usage documents MongoDB → warehouse, then warehouse → search index, with baselines.

One run measures, on the project's local services (FerretDB, PostgreSQL or DuckDB, OpenSearch):

- seeding: ``insert_many`` of the generated documents (context, not a target);
- source ceiling: draining the collection as raw BSON batches without any processing (what the
  MongoDB-wire server can deliver; no ingest can be faster) on a bounded sample;
- ingest: the production path (``ingest_batch``: streamed read with prefetch, validation, stage
  bulk write, merge by id, watermark, one transaction) over all documents, and our own processing
  rate without the time spent waiting for the server;
- baseline ingest: per-document read + validate + INSERT + COMMIT, on a bounded sample;
- index: the production versioned build of ``search/usage_prompts`` from ``stg.usage_events``
  (streamed rows, parallel bulk) and, as baseline, one ``index`` call per document on a sample.

Usage::

    python -m bench.usage_ingest [--docs 1000000] [--engine postgres|duckdb] [--baseline-docs 10000]
                                 [--mongo-uri mongodb://...]  # default: the local FerretDB service
"""

import argparse
import datetime as dt
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bson import ObjectId
from pymongo import MongoClient

from assets.sources.mongo_collection._ingest import ingest_batch
from assets.sources.mongo_collection._keyset import BatchRange, Position, floor_ms
from assets.usage.documents import USAGE_ROW_SCHEMA, validate_document
from assets.usage.insight_indices import stream_rows
from assets.usage.tables import usage_mongo_source
from dbt_like_sql import load_project, materialize_model
from generators.usage import generate_usage_documents, insert_usage_documents
from resources.search import SearchResource
from resources.search_indices import build_versioned_index
from resources.usage_index_specs import PROMPTS
from resources.warehouse import WarehouseResource, dispose_engines
from services import connection_info

OUT = Path(__file__).resolve().parent / "out"
TARGETS = {"ingest_docs_per_s": 20_000, "index_docs_per_s": 10_000}


def _fresh_warehouse(engine: str, workdir: Path) -> WarehouseResource:
    if engine == "duckdb":
        return WarehouseResource(url=f"duckdb:///{workdir / 'bench.duckdb'}")
    admin_url = connection_info(["postgres"])["postgres"].url
    name = f"bench_usage_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return WarehouseResource(url=admin_url.rsplit("/", 1)[0] + f"/{name}")


def _drop_warehouse(engine: str, warehouse: WarehouseResource) -> None:
    dispose_engines()
    if engine == "postgres":
        admin = sa.create_engine(connection_info(["postgres"])["postgres"].url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f'DROP DATABASE IF EXISTS "{sa.make_url(warehouse.url).database}" WITH (FORCE)'
            )
        admin.dispose()


def _seed(collection: Any, docs: int) -> float:
    started = time.perf_counter()
    chunks = generate_usage_documents(docs, users=2_000, days=60, seed=1, bad_share=0.001, bursts=20)
    insert_usage_documents(collection, chunks, total=docs, batch_size=10_000)
    return time.perf_counter() - started


def _source_ceiling(collection: Any, sample: int) -> float:
    """Docs/s the server delivers as raw BSON (no decoding, no processing) on ``sample`` documents."""
    started, seen = time.perf_counter(), 0
    for batch in collection.find_raw_batches({}, batch_size=10_000).limit(sample):
        seen += len(batch)
    elapsed = time.perf_counter() - started
    return sample / elapsed if seen else 0.0


def _ingest(warehouse: WarehouseResource, collection: Any, docs: int) -> dict[str, float]:
    """The production ingest over everything: one batch as the sensor plans it for this backlog."""
    now = dt.datetime.now(dt.UTC)
    horizon = floor_ms(now)
    batch = BatchRange(
        lower=None,
        upper=Position(horizon),
        sweep_from=None,
        sweep_until=ObjectId.from_datetime(horizon.replace(tzinfo=dt.UTC)),
        max_docs=docs,
    )
    outcome = ingest_batch(
        warehouse,
        collection,
        batch,
        spec=usage_mongo_source().ingest_spec(),
        now=now,
        lag_seconds=0,
        max_docs=docs,
        peek_timeout_ms=10_000,
    )
    return {
        "seconds": outcome.elapsed_s,
        "docs": outcome.docs_read,
        "rows": outcome.rows_new,
        "rejected": outcome.rejected,
        "fetch_seconds": outcome.fetch_s,
        "processing_seconds": outcome.process_s,
    }


def _baseline_ingest(warehouse: WarehouseResource, collection: Any, sample: int) -> float:
    """Naive: read, validate and INSERT one document at a time, one transaction each."""
    names = list(USAGE_ROW_SCHEMA.names)
    with warehouse.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE raw.usage_events_naive AS SELECT * FROM raw.usage_events WHERE 1 = 0"
        )
    insert = sa.text(
        f"INSERT INTO raw.usage_events_naive ({', '.join(names)}) "
        f"VALUES ({', '.join(':' + n for n in names)})"
    )
    started, written = time.perf_counter(), 0
    for doc in collection.find({}).skip(1_000).limit(sample):
        row, _ = validate_document(doc)
        if row is None:
            continue
        row["source_updated_at"] = row.pop("source_updated_at")
        with warehouse.begin() as conn:
            conn.execute(insert, {n: row[n] for n in names})
        written += 1
    elapsed = time.perf_counter() - started
    return written / elapsed


def _index(warehouse: WarehouseResource, search: SearchResource, prefix: str) -> dict[str, float]:
    model = load_project().get("stg.usage_events")
    started = time.perf_counter()
    materialize_model(warehouse, model)
    stg_seconds = time.perf_counter() - started
    build = build_versioned_index(
        search,
        PROMPTS.definition(prefix),
        stream_rows(warehouse, PROMPTS.select_sql),
        chunk_size=2000,
        thread_count=2,
    )
    return {
        "stg_seconds": stg_seconds,
        "docs": build.documents,
        "bulk_seconds": build.bulk_seconds,
        "total_seconds": build.total_seconds,
    }


def _baseline_index(warehouse: WarehouseResource, search: SearchResource, prefix: str, sample: int) -> float:
    """Naive: one ``index`` request per document (default refresh), into a throwaway index."""
    name = f"{prefix}naive"
    definition = PROMPTS.definition(prefix)
    search.create_index(name, mappings=definition.mappings, settings=definition.settings, exist_ok=False)
    client = search.client()
    started, done = time.perf_counter(), 0
    try:
        for row in stream_rows(warehouse, PROMPTS.select_sql + f" LIMIT {int(sample)}"):
            client.index(index=name, id=row["event_id"], body=row)
            done += 1
        return done / (time.perf_counter() - started)
    finally:
        search.delete_index(name)


def _server_name(client: MongoClient, local: bool) -> str:
    """What answers the MongoDB wire protocol, e.g. ``FerretDB v1.24.2-perf1`` or ``MongoDB 7.0.14``."""
    info = client.admin.command("buildInfo")
    if "ferretdbVersion" not in info:
        return f"MongoDB {info.get('version', '?')}"
    build = info["ferretdbVersion"]
    if local:  # the services module knows whether its build carries the read-path patches
        build = connection_info(["ferretdb"])["ferretdb"].extra.get("build", build)
    return f"FerretDB {build}"


def run(
    docs: int, engine: str, baseline_docs: int, ceiling_docs: int, mongo_uri: str | None = None
) -> dict[str, Any]:
    mongo_url = mongo_uri or connection_info(["ferretdb"])["ferretdb"].url
    search_url = connection_info(["opensearch"])["opensearch"].url
    database = f"bench_usage_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    search = SearchResource(url=search_url, engine="opensearch", request_timeout_s=120)
    results: dict[str, Any] = {"docs": docs, "engine": engine, "baseline_docs": baseline_docs}
    results["mongo_server"] = _server_name(client, local=mongo_uri is None)
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = _fresh_warehouse(engine, Path(tmp))
        try:
            collection = client[database]["usage_events"]
            results["seed_seconds"] = _seed(collection, docs)
            print(f"seeded {docs:,} documents in {results['seed_seconds']:.1f}s")
            results["source_ceiling_docs_per_s"] = _source_ceiling(collection, min(ceiling_docs, docs))
            results["ingest"] = _ingest(warehouse, collection, docs)
            print(f"ingest: {json.dumps(results['ingest'])}")
            results["baseline_ingest_docs_per_s"] = _baseline_ingest(warehouse, collection, baseline_docs)
            results["index"] = _index(warehouse, search, prefix)
            print(f"index: {json.dumps(results['index'])}")
            results["baseline_index_docs_per_s"] = _baseline_index(warehouse, search, prefix, baseline_docs)
        finally:
            client.drop_database(database)
            client.close()
            for name in search.list_indices(f"{prefix}*"):
                search.delete_index(name)
            search.close()
            _drop_warehouse(engine, warehouse)
    ingest, index = results["ingest"], results["index"]
    results["ingest_docs_per_s"] = ingest["docs"] / ingest["seconds"]
    results["ingest_processing_docs_per_s"] = ingest["docs"] / max(
        1e-9, ingest["seconds"] - ingest["fetch_seconds"]
    )
    results["index_docs_per_s"] = index["docs"] / index["bulk_seconds"]
    results["index_end_to_end_docs_per_s"] = index["docs"] / index["total_seconds"]
    results["ingest_speedup"] = results["ingest_docs_per_s"] / results["baseline_ingest_docs_per_s"]
    results["index_speedup"] = results["index_docs_per_s"] / results["baseline_index_docs_per_s"]
    return results


def _print(r: dict[str, Any]) -> None:
    print(
        f"\nusage benchmark: {r['docs']:,} documents from {r['mongo_server']}, warehouse {r['engine']}, "
        f"baselines on {r['baseline_docs']:,}"
    )
    lines = [
        ("seed insert_many (context)", r["docs"] / r["seed_seconds"], None),
        ("source ceiling: raw BSON drain", r["source_ceiling_docs_per_s"], None),
        ("ingest MongoDB → warehouse", r["ingest_docs_per_s"], TARGETS["ingest_docs_per_s"]),
        ("  our processing alone (no waiting)", r["ingest_processing_docs_per_s"], None),
        ("baseline per-document insert", r["baseline_ingest_docs_per_s"], None),
        ("index bulk warehouse → OpenSearch", r["index_docs_per_s"], TARGETS["index_docs_per_s"]),
        ("  incl. create/refresh/switch", r["index_end_to_end_docs_per_s"], None),
        ("baseline per-document index call", r["baseline_index_docs_per_s"], None),
    ]
    print(f"{'metric':<38}{'docs/s':>12}{'target':>10}")
    for name, rate, target in lines:
        print(f"{name:<38}{rate:>12,.0f}{(f'{target:,}' if target else ''):>10}")
    print(
        f"ingest speed-up vs baseline: {r['ingest_speedup']:.1f}x; index speed-up: {r['index_speedup']:.1f}x"
    )
    print(f"stg.usage_events build: {r['index']['stg_seconds']:.1f}s; rejected: {r['ingest']['rejected']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("postgres", "duckdb"), default="postgres")
    parser.add_argument("--baseline-docs", type=int, default=10_000, help="sample of the naive baselines")
    parser.add_argument("--ceiling-docs", type=int, default=200_000, help="sample of the source ceiling")
    parser.add_argument(
        "--mongo-uri", default=None, help="another MongoDB-wire server (default: local FerretDB)"
    )
    args = parser.parse_args()
    results = run(args.docs, args.engine, args.baseline_docs, args.ceiling_docs, args.mongo_uri)
    _print(results)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"usage_ingest_{args.engine}.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
