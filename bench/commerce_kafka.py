"""Benchmark: commerce clickstream Kafka → committed rows in PostgreSQL, vs the seed's consumer.

One run, on this machine, with the real broker and database from ``python -m services up kafka
postgres``:

1. **produce** N events (default 1,000,000, 0.1 % malformed) to a fresh 3-partition topic;
2. **ingest**: the real offsets sensor plans the ranges, and the real ``commerce_kafka_ingest`` job
   (in-process executor) runs each request, ``--workers`` at a time in separate processes, as the
   daemon's run queue would; timed from the first tick to the last commit, with the worker
   processes already started (their start-up is timed and reported separately); the ledger must
   then cover every offset and the table hold every valid event;
3. **baseline** (the seed's approach, :mod:`bench.commerce_seed_baseline`): kafka-python consumer
   group, JSON per message, batches of 100, row INSERTs into events/products/transactions, one commit
   per batch. Measured on a bounded sample (``--baseline-events``) because a full million would take
   most of an hour;
4. **daemon** (``--daemon``, :mod:`bench.commerce_daemon`): ``dagster-daemon`` with this module's code
   location; the run overhead of one 1,000-event batch (sensor tick → run success) and the
   event-to-API freshness while events stream in at ``--stream-rate`` for ``--stream-seconds`` (API =
   the real FastAPI app over the marts).

``defs`` (module level) is the code location the daemon loads: the commerce domain, its SQL models,
the automation sensor and resources from the environment.

Usage::

    python -m bench.commerce_kafka [--events 1000000] [--workers 2] [--baseline-events 20000] [--daemon]
"""

import argparse
import json
import multiprocessing as mp
import os
import time
import uuid
from pathlib import Path
from typing import Any

from dagster import (
    DagsterInstance,
    Definitions,
    EnvVar,
    SensorResult,
    build_sensor_context,
)

from assets.automation import for_sql_model
from assets.sources.kafka_topic._sensor import RANGES_TAG
from bench.commerce_daemon import daemon_measurements
from bench.commerce_seed_baseline import seed_baseline
from bench.daemon_harness import drop_database, fresh_database, service_urls
from dbt_like_sql import build_sql_model_assets, load_project
from orchestration import commerce
from orchestration.execution import DEFAULT_EXECUTOR
from orchestration.sensors import automation_sensor
from resources.kafka import KafkaResource
from resources.landing_zone import LandingZoneResource
from resources.settings import LandingSettings
from resources.warehouse import WarehouseResource

REPO = Path(__file__).resolve().parents[1]

_models = build_sql_model_assets(load_project(), automation_condition_for=for_sql_model)
_commerce_models = [a for a in _models if any(k.path[1].startswith("commerce_") for k in a.keys)]

defs = Definitions.merge(
    commerce.defs,
    commerce.commerce_kafka_defs,
    Definitions(
        assets=_commerce_models,
        sensors=[automation_sensor],
        executor=DEFAULT_EXECUTOR,
        # main() sets WAREHOUSE_URL and KAFKA_BOOTSTRAP_SERVERS before any run; the processes it starts
        # inherit them, so these EnvVar resolve there.
        resources={
            "warehouse": WarehouseResource(url=EnvVar("WAREHOUSE_URL")),
            "kafka": KafkaResource(bootstrap_servers=EnvVar("KAFKA_BOOTSTRAP_SERVERS")),
            "landing_zone": LandingZoneResource(root=LandingSettings.current().root),
        },
    ),
)


# ------------------------------------------------------------------------------------------------
# Helpers


def _scalar(url: str, sql: str) -> Any:
    return WarehouseResource(url=url).scalar(sql)


def _line(label: str, seconds: float, count: int) -> str:
    if not count:
        return f"{label:<58} {seconds:>8.1f} s"
    rate = count / seconds if seconds else 0.0
    return f"{label:<58} {seconds:>8.1f} s  {rate:>11,.0f} events/s"


# ------------------------------------------------------------------------------------------------
# Ingest through the real sensor and job


def _execute_request(run_config: dict, tags: dict) -> tuple[bool, dict]:
    """Worker process: run one sensor request with the real job (in-process executor)."""
    job = defs.resolve_job_def("commerce_kafka_ingest")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            run_config=run_config, instance=instance, tags=tags, raise_on_error=False
        )
        meta: dict = {}
        for event in result.get_asset_materialization_events():
            if event.materialization.asset_key.path[-1] == "commerce_events":
                meta = {
                    k: v.value
                    for k, v in event.materialization.metadata.items()
                    if k != "dead_letter_reasons"
                }
        return result.success, meta


def _warm_worker(_: int) -> float:
    """Worker process start-up: the code location is imported when the worker loads this module."""
    started = time.perf_counter()
    defs.resolve_job_def("commerce_kafka_ingest")
    return time.perf_counter() - started


def ingest_with_sensor(workers: int) -> tuple[float, float, int, list[dict]]:
    """Tick the real sensor until nothing is missing, running its requests ``workers`` at a time.

    Returns (worker start-up seconds, ingest seconds, runs, run metadata). The worker processes are
    started and have imported the code location before the ingest clock starts: start-up is paid
    once per worker here, reported on its own (a run launched by the daemon pays it per run; see the
    small-batch overhead of ``--daemon``).
    """
    resources = {
        "kafka": KafkaResource(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"]),
        "warehouse": WarehouseResource(url=os.environ["WAREHOUSE_URL"]),
    }
    sensor = commerce.commerce_kafka_sensor
    runs: list[dict] = []
    ctx = mp.get_context("spawn")
    warm_started = time.perf_counter()
    with DagsterInstance.ephemeral() as instance, ctx.Pool(workers) as pool:
        pool.map(_warm_worker, range(workers), chunksize=1)
        startup = time.perf_counter() - warm_started
        started = time.perf_counter()
        while True:
            result = sensor(build_sensor_context(instance=instance, resources=resources))
            assert isinstance(result, SensorResult)
            if not result.run_requests:
                break
            pending = [
                pool.apply_async(_execute_request, (r.run_config, r.tags)) for r in result.run_requests
            ]
            for request, job in zip(result.run_requests, pending, strict=True):
                success, meta = job.get()
                if not success:
                    raise RuntimeError(f"ingest run failed for {request.tags[RANGES_TAG]}")
                runs.append(meta)
        elapsed = time.perf_counter() - started
        # Let the workers exit on their own: a SIGTERM from Pool.terminate() can be swallowed by
        # the interrupt handlers Dagster installs in them, leaving the benchmark waiting forever.
        pool.close()
        pool.join()
    return startup, elapsed, len(runs), runs


# ------------------------------------------------------------------------------------------------
# The run: produce, ingest, baseline, daemon; one report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.commerce_kafka", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="concurrent ingest runs (daemon queue)")
    parser.add_argument("--max-events-per-run", type=int, default=200_000)
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--baseline-max-seconds", type=float, default=120.0)
    parser.add_argument("--daemon", action="store_true", help="also measure run overhead and freshness")
    parser.add_argument("--stream-rate", type=float, default=200.0)
    parser.add_argument("--stream-seconds", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="keep the topic and database")
    args = parser.parse_args(argv)

    from generators.commerce import produce_parallel

    urls = service_urls()
    admin_url = urls["pg"]
    bootstrap = urls["kafka"]
    topic = f"bench.commerce.{uuid.uuid4().hex[:8]}"
    kafka = KafkaResource(bootstrap_servers=bootstrap, client_id="afluente-bench")
    kafka.create_topic(topic, partitions=3)
    pg_url = fresh_database(admin_url, "bench_commerce")
    baseline_url = fresh_database(admin_url, "bench_seed")
    os.environ.update(
        {
            "WAREHOUSE_URL": pg_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "COMMERCE_KAFKA_TOPIC": topic,
            "COMMERCE_KAFKA_MAX_EVENTS_PER_RUN": str(args.max_events_per_run),
            "COMMERCE_KAFKA_MAX_RUNS_PER_TICK": "64",
        }
    )
    report: dict[str, Any] = {"events": args.events, "topic": topic}
    lines = [
        f"commerce Kafka benchmark: {args.events:,} events, topic {topic} (3 partitions), "
        f"nproc={os.cpu_count()}"
    ]
    try:
        produced = produce_parallel(args.events, bootstrap, topic, workers=2, bad_share=0.001, seed=1)
        lines.append(_line("produce (generator, 2 producer processes)", produced.seconds, produced.sent))
        report["produce"] = {
            "seconds": round(produced.seconds, 2),
            "sent": produced.sent,
            "bad": produced.bad,
        }

        startup, seconds, n_runs, runs = ingest_with_sensor(args.workers)
        stored = int(_scalar(pg_url, "SELECT COUNT(*) FROM raw.commerce_events"))
        dead = int(_scalar(pg_url, "SELECT COUNT(*) FROM raw.commerce_events_dead_letter"))
        covered = int(
            _scalar(pg_url, "SELECT COALESCE(SUM(next_offset - start_offset), 0) FROM raw.kafka_offsets")
        )
        assert stored + dead == args.events == covered, (stored, dead, covered)
        lines.append(
            _line(
                f"ingest: sensor + {n_runs} runs, {args.workers} at a time -> PostgreSQL",
                seconds,
                args.events,
            )
        )
        lines.append(_line(f"  + start-up of {args.workers} run worker processes (once)", startup, 0))
        lines.append(_line("  = ingest including worker start-up", startup + seconds, args.events))
        consume = sum(r.get("consume_seconds", 0) for r in runs)
        write = sum(r.get("write_seconds", 0) for r in runs)
        report["ingest"] = {
            "seconds": round(seconds, 2),
            "events_per_s": round(args.events / seconds),
            "worker_startup_s": round(startup, 2),
            "events_per_s_with_startup": round(args.events / (startup + seconds)),
            "runs": n_runs,
            "workers": args.workers,
            "rows": stored,
            "dead_letters": dead,
            "sum_consume_s": round(consume, 1),
            "sum_write_s": round(write, 1),
        }

        base_seconds, base_n = seed_baseline(
            bootstrap, topic, baseline_url, args.baseline_events, args.baseline_max_seconds
        )
        lines.append(_line(f"baseline (seed consumer, {base_n:,} events sample)", base_seconds, base_n))
        ours = args.events / seconds
        theirs = base_n / base_seconds
        report["baseline"] = {
            "seconds": round(base_seconds, 2),
            "events": base_n,
            "events_per_s": round(theirs),
        }
        with_startup = args.events / (startup + seconds)
        report["speedup"] = round(ours / theirs, 1)
        report["speedup_with_startup"] = round(with_startup / theirs, 1)
        lines.append(f"{'speed-up vs baseline':<58} {ours / theirs:>8.1f} x")
        lines.append(f"{'speed-up vs baseline, start-up included':<58} {with_startup / theirs:>8.1f} x")
        lines.append(f"{'baseline for 1M events (extrapolated)':<58} {args.events / theirs:>8.0f} s")

        if args.daemon:
            measured = daemon_measurements(bootstrap, topic, pg_url, args.stream_rate, args.stream_seconds)
            report["daemon"] = measured
            lines.append(f"daemon: {json.dumps(measured)}")
    finally:
        print("\n".join(lines))
        print(json.dumps(report, indent=2, default=str))
        if not args.keep:
            drop_database(admin_url, pg_url)
            drop_database(admin_url, baseline_url)
            kafka.delete_topic(topic)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
