"""Benchmark: the subscriptions command API (``POST`` → ``202``) under 50 concurrent clients.

Three variants of the same app, served the same way (uvicorn, ``--workers`` processes, one per core by
default) in the same run, each taking ``--concurrency`` clients for ``--seconds`` on
``POST /usuarios/{id}/pagamento`` (validated body, a new correlation id per request):

* ``kafka``: the production path without a key (``hey``) — the event goes to a fresh topic and the
  202 waits for the broker's acknowledgement (idempotent producer, ``acks=all``);
* ``keyed``: the same path with a new unique ``Idempotency-Key`` per request, so every command is
  reserved in, then marked produced in, the shared idempotency store (PostgreSQL here). ``hey``
  cannot vary a header: :class:`bench.http_client.HttpClient` drives it (one asyncio client process,
  ``--concurrency`` connections, each sending its next request when the previous one is answered);
* ``insert``: the baseline — one synchronous INSERT (own transaction, committed) per request into
  PostgreSQL (``bench.commands_baseline``).

Afterwards every 202 is looked for where it should be (topic end offsets / table rows). Commands/s,
p50/p95/p99 and the targets (≥ 2,000 commands/s, p95 < 50 ms) are printed and written to
``bench/out/commands_load.json``. Usage::

    python -m bench.commands_load [--seconds 30] [--concurrency 50] [--workers 0] [--variants kafka,keyed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.api_load import OUT, hey, hey_binary, serve
from bench.commands_baseline import TABLE_DDL
from bench.exports_load import _drop_warehouse, _fresh_warehouse
from bench.http_client import HttpClient
from resources.kafka import KafkaResource
from resources.settings import KafkaSettings

PATH = "/usuarios/u-bench-1/pagamento"
BODY = json.dumps({"valor": "39.90", "metodo": "pix"})
TARGET_RPS = 2000
TARGET_P95_MS = 50.0
VARIANTS = {
    "kafka": "api.app:create_app",
    "keyed": "api.app:create_app",
    "insert": "bench.commands_baseline:baseline_app",
}


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of the server process and its worker processes so far."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for process in (pid, *map(int, children)):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _percentile(ordered: list[float], share: float) -> float | None:
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] if ordered else None


async def _keyed_load(base: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """``concurrency`` clients posting for ``seconds``, each request under a new ``Idempotency-Key``;
    the same figures as :func:`bench.api_load.hey` (latency of every answered request)."""
    client = HttpClient(base, concurrency)
    body = json.loads(BODY)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    stop = time.monotonic() + seconds

    async def one_client() -> None:
        nonlocal errors
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                status, _ = await client.request("POST", PATH, body, {"Idempotency-Key": uuid.uuid4().hex})
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    started, cpu = time.monotonic(), time.process_time()
    try:
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    finally:
        client.close()
    cpu = time.process_time() - cpu
    latencies.sort()
    return {
        # The client shares the machine's cores with the API: its CPU bounds what the run can show.
        "client_cpu_us_per_request": cpu / max(len(latencies), 1) * 1e6,
        "rps": len(latencies) / (time.monotonic() - started),
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "statuses": statuses,
        "non_200": sum(n for code, n in statuses.items() if code != 200) + errors,
        "errors": errors,
    }


def _drive(variant: str, binary: Path, base: str, seconds: int, concurrency: int) -> dict[str, Any]:
    """One load run: ``hey`` without a key, the Python client with a fresh key per request."""
    if variant == "keyed":
        return asyncio.run(_keyed_load(base, seconds, concurrency))
    options = ("-m", "POST", "-T", "application/json", "-d", BODY)
    return hey(binary, base + PATH, seconds, concurrency, *options)


def _stored(variant: str, kafka: KafkaResource, topic: str, url: str) -> int:
    """How many commands reached their store: messages in the topic, or rows in the baseline table."""
    if variant != "insert":
        return sum(kafka.end_offsets(topic).values())
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM bench_commands")).scalar_one())
    finally:
        engine.dispose()


def run(seconds: int, concurrency: int, workers: int, variants: list[str]) -> dict[str, Any]:
    """The variants against one fresh PostgreSQL database, each on its own fresh 3-partition topic."""
    binary = hey_binary()
    kafka = KafkaResource(bootstrap_servers=KafkaSettings.current().bootstrap_servers)
    run_id = uuid.uuid4().hex[:8]
    topics = {variant: f"bench.commands.{variant}.{run_id}" for variant in variants}
    for topic in topics.values():
        kafka.create_topic(topic, partitions=3)
    results: dict[str, Any] = {
        "concurrency": concurrency,
        "seconds": seconds,
        "workers": workers,
        "path": PATH,
    }
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = _fresh_warehouse("postgres", Path(tmp))
        try:
            with sa.create_engine(warehouse.url).begin() as conn:
                conn.execute(sa.text(TABLE_DDL))
            for variant in variants:
                os.environ["SUBSCRIPTIONS_COMMANDS_TOPIC"] = topics[variant]  # serve() hands it over
                process, base = serve(warehouse.url, False, workers, VARIANTS[variant])
                try:
                    warm = _drive(variant, binary, base, 2, 4)  # producers/pools created
                    cpu_before = _cpu_seconds(process.pid)
                    measured = _drive(variant, binary, base, seconds, concurrency)
                    cpu = _cpu_seconds(process.pid) - cpu_before
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                accepted = warm["statuses"].get(202, 0) + measured["statuses"].get(202, 0)
                measured["accepted_per_s"] = measured["statuses"].get(202, 0) / seconds
                # The API's own CPU per command (librdkafka / driver threads included): what caps
                # throughput once the machine is not shared.
                measured["server_cpu_us_per_command"] = cpu / max(measured["statuses"].get(202, 0), 1) * 1e6
                measured["accepted"] = accepted
                measured["stored"] = _stored(variant, kafka, topics[variant], warehouse.url)
                results[variant] = measured
                print(f"{variant:7s} {_row(measured)}", flush=True)
        finally:
            _drop_warehouse("postgres", warehouse)
            for topic in topics.values():
                kafka.delete_topic(topic)
    return results


def _row(m: dict[str, Any]) -> str:
    client = m.get("client_cpu_us_per_request")
    return (
        f"{m['accepted_per_s']:7.0f} accepted/s  p50 {m['p50_ms']:6.1f} ms  p95 {m['p95_ms']:6.1f} ms  "
        f"p99 {m['p99_ms']:6.1f} ms  server CPU {m['server_cpu_us_per_command']:4.0f} us/command  "
        + ("" if client is None else f"client CPU {client:4.0f} us/request  ")
        + f"answers {m['statuses']}  errors {m['errors']}  202s {m['accepted']} / stored {m['stored']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=0, help="API workers (0: one per core)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated, of: kafka,keyed,insert"
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown or not variants:
        parser.error(f"unknown variants {sorted(unknown)}: choose among {', '.join(VARIANTS)}")
    workers = args.workers or os.cpu_count() or 1
    results = run(args.seconds, args.concurrency, workers, variants)
    print(f"\n{args.concurrency} clients x {args.seconds} s, {workers} API workers, POST {PATH}")
    names = {
        "kafka": "kafka (202 after broker ack)",
        "keyed": "keyed (new Idempotency-Key each)",
        "insert": "insert baseline (1 INSERT/request)",
    }
    for variant in variants:
        print(f"  {names[variant]:36s} {_row(results[variant])}")
    OUT.mkdir(parents=True, exist_ok=True)
    lost = [v for v in variants if results[v]["stored"] < results[v]["accepted"]]
    if "kafka" not in variants or "insert" not in variants:
        (OUT / "commands_load.json").write_text(json.dumps(results, indent=2))
        return 1 if lost else 0
    kafka, insert = results["kafka"], results["insert"]
    ok_rps, ok_p95 = kafka["accepted_per_s"] >= TARGET_RPS, kafka["p95_ms"] < TARGET_P95_MS
    print(
        f"targets: >= {TARGET_RPS} commands/s {'met' if ok_rps else 'MISSED'}, "
        f"p95 < {TARGET_P95_MS:.0f} ms {'met' if ok_p95 else 'MISSED'}; "
        f"kafka/insert throughput {kafka['accepted_per_s'] / max(insert['accepted_per_s'], 1e-9):.2f}x"
    )
    results["targets"] = {"rps": TARGET_RPS, "p95_ms": TARGET_P95_MS, "rps_met": ok_rps, "p95_met": ok_p95}
    (OUT / "commands_load.json").write_text(json.dumps(results, indent=2))
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
