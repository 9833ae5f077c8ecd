"""Benchmark: subscription command → ``processed`` latency, with the real ``dagster-daemon`` running.

On this machine's PostgreSQL and Kafka (``python -m services up``), in one run:

1. a fresh database, fresh commands and responses topics (``SUBSCRIPTIONS_COMMANDS_TOPIC`` /
   ``SUBSCRIPTIONS_RESPONSES_TOPIC``) and a temporary ``DAGSTER_HOME`` with
   ``orchestration/dagster.local.yaml``;
2. ``dagster-daemon`` on this module's code location (``defs``: the declared ``user_events`` Kafka
   source with its offsets sensor, the subscriptions SQL models, the outcome publisher, the
   automation sensor); the read API (``python -m api``) in front of the same database and topic;
3. **warm-up**: a few commands, waited for until processed (daemon start-up and the first build of
   every model, reported on their own);
4. **steady phase**: ``--rate`` commands/s for ``--seconds`` s through ``POST /usuarios...`` — the
   generator's mix (sign-ups, subscriptions, plan changes, cancellations, payments incl. retried and
   stray ones, preferences) turned into the API's requests — while ``GET /status/{correlation_id}``
   is polled for a ``--sample`` of them, spread over the phase, until ``processed``/``rejected``.

Latency is from the ``202`` to the first ``/status`` answer showing the outcome (an upper bound: one
poll round late at most, the round time is printed). Commands of the sample not answered within
``--timeout`` s after the last send are counted (must be 0), and every accepted command is then
looked for in ``stg.command_outcomes``. Figures (p50/p95/max, target p95 < 30 s), the runs the
daemon launched and the load average go to stdout and ``bench/out/commands_latency.json``. Usage::

    python -m bench.commands_latency [--rate 200] [--seconds 60] [--sample 300] [--timeout 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetsDefinition, Definitions, EnvVar

from bench.http_client import HttpClient
from orchestration import subscriptions
from orchestration.declared import declared
from orchestration.execution import DEFAULT_EXECUTOR
from orchestration.sensors import automation_sensor
from resources.kafka import KafkaResource
from resources.landing_zone import LandingZoneResource
from resources.settings import LandingSettings
from resources.warehouse import WarehouseResource

MODULE = "bench.commands_latency"
TARGET_P95_S = 30.0
TERMINAL = ("processed", "rejected")


def _subscription_models() -> list[AssetsDefinition]:
    """The subscriptions SQL models as the code location declares them (assets/defs/sql_models)."""
    return [
        a
        for a in declared("sql_models").assets or ()
        if isinstance(a, AssetsDefinition) and set(a.group_names_by_key.values()) == {"subscriptions"}
    ]


# The daemon's code location: the subscriptions domain only, bound to the environment as production is.
defs = Definitions.merge(
    declared("subscriptions/user_events"),
    subscriptions.defs,
    Definitions(
        assets=_subscription_models(),
        sensors=[automation_sensor],
        executor=DEFAULT_EXECUTOR,
        # main() sets WAREHOUSE_URL and KAFKA_BOOTSTRAP_SERVERS before it starts the daemon, whose
        # processes inherit them, so these EnvVar resolve there.
        resources={
            "warehouse": WarehouseResource(url=EnvVar("WAREHOUSE_URL")),
            "kafka": KafkaResource(bootstrap_servers=EnvVar("KAFKA_BOOTSTRAP_SERVERS")),
            "landing_zone": LandingZoneResource(root=LandingSettings.current().root),
        },
    ),
)


# ------------------------------------------------------------------------------------------------
# Requests: the generator's envelopes as the command API's requests

Request = tuple[str, dict[str, Any], dict[str, str]]
_SUBSCRIPTION_ACTIONS = {
    "assinatura_criada": "criar",
    "assinatura_alterada": "alterar",
    "assinatura_cancelada": "cancelar",
}


def request_for(event: dict[str, Any]) -> Request:
    """(path, JSON body, headers) of the API request that produces ``event``'s command.

    A sign-up's ``Idempotency-Key`` is the generator's, so the API derives the same user id the
    generator's later commands name; retried commands keep their key (same correlation id).
    """
    kind, user, payload, key = (
        event["event_type"],
        event["user_id"],
        event["payload"],
        event["idempotency_key"],
    )
    headers = {"Idempotency-Key": key} if key else {}
    if kind == "usuario_criado":
        return "/usuarios", payload, headers
    if kind in _SUBSCRIPTION_ACTIONS:
        return f"/usuarios/{user}/assinatura", {"acao": _SUBSCRIPTION_ACTIONS[kind], **payload}, headers
    if kind == "pagamento_registrado":
        return f"/usuarios/{user}/pagamento", payload, headers
    if kind == "config_atualizada":
        return f"/usuarios/{user}/config", payload, headers
    raise ValueError(f"no command route for event type {kind!r}")


def generated_requests(count: int, seed: int) -> tuple[list[Request], Counter[str]]:
    """The first ``count`` commands of a generated population (time order), and their types."""
    from generators.subscriptions import generate_commands

    requests: list[Request] = []
    kinds: Counter[str] = Counter()
    # ~3 commands per user over 30 days: enough users that the stream is longer than count.
    for generated in generate_commands(users=math.ceil(count / 2.5) + 10, days=30, seed=seed):
        if len(requests) == count:
            break
        if generated.event is None:  # a malformed message: the API would refuse it, not a command
            continue
        requests.append(request_for(generated.event))
        kinds[generated.event["event_type"]] += 1
    if len(requests) < count:
        raise RuntimeError(f"the generator gave {len(requests)} commands, {count} wanted")
    return requests, kinds


# ------------------------------------------------------------------------------------------------
# Driving the API: steady sends, status polls


@dataclass
class Tracked:
    """One sampled command: when its 202 came back and when /status first showed its outcome."""

    accepted_at: float
    outcome: str | None = None
    done_at: float | None = None


@dataclass
class Drive:
    """What one phase of sends and polls saw."""

    answers: Counter[int | str] = field(default_factory=Counter)
    accepted: dict[str, float] = field(default_factory=dict)  # correlation_id -> first 202
    tracked: dict[str, Tracked] = field(default_factory=dict)
    send_seconds: float = 0.0
    poll_rounds: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)


async def drive(
    base: str,
    requests: list[Request],
    rate: float,
    sample: int,
    timeout: float,
    poll_interval: float = 1.0,
    in_flight: int = 64,
) -> Drive:
    """Send ``requests`` at ``rate``/s; poll /status for ``sample`` of them until terminal or ``timeout``
    seconds after the last send."""
    seen = Drive()
    sampled = {i * len(requests) // sample for i in range(min(sample, len(requests)))}  # spread evenly
    sending_done = asyncio.Event()
    client = HttpClient(base, in_flight + 16)
    try:

        async def send(index: int, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
            try:
                status, answer = await asyncio.wait_for(client.request("POST", path, body, headers), 60)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                seen.answers[type(exc).__name__] += 1
                return
            seen.answers[status] += 1
            if status == 202:
                now = time.time()
                cid = answer["correlation_id"]
                seen.accepted.setdefault(cid, now)
                if index in sampled and cid not in seen.tracked:
                    seen.tracked[cid] = Tracked(accepted_at=now)

        async def sender() -> None:
            # Bounded in flight: a client behind schedule catches up at what the slots allow, instead
            # of queueing thousands of requests on the connection pool (whose waiters cost O(n) each).
            slots = asyncio.Semaphore(in_flight)

            async def send_in_slot(index: int, request: Request) -> None:
                try:
                    await send(index, *request)
                finally:
                    slots.release()

            started = time.monotonic()
            pending = []
            for index, request in enumerate(requests):
                delay = started + index / rate - time.monotonic()
                await asyncio.sleep(max(delay, 0))
                await slots.acquire()
                pending.append(asyncio.create_task(send_in_slot(index, request)))
            await asyncio.gather(*pending)
            seen.send_seconds = time.monotonic() - started
            sending_done.set()

        async def probe(cid: str, tracked: Tracked, gate: asyncio.Semaphore) -> None:
            async with gate:
                try:
                    status, answer = await asyncio.wait_for(client.request("GET", f"/status/{cid}"), 60)
                except (OSError, TimeoutError, asyncio.IncompleteReadError):
                    return
            if status == 200 and answer["status"] in TERMINAL:
                tracked.outcome, tracked.done_at = answer["status"], time.time()

        async def poller() -> None:
            gate = asyncio.Semaphore(16)
            deadline: float | None = None
            next_report = time.monotonic() + 10
            while True:
                if time.monotonic() >= next_report:  # progress, so a stall shows where it is
                    next_report += 10
                    done = sum(1 for t in seen.tracked.values() if t.done_at is not None)
                    print(
                        f"  answers {dict(seen.answers)}, sampled {done}/{len(seen.tracked)} done", flush=True
                    )
                waiting = {cid: t for cid, t in seen.tracked.items() if t.done_at is None}
                if sending_done.is_set():
                    deadline = deadline or time.monotonic() + timeout
                    if not waiting or time.monotonic() > deadline:
                        return
                round_started = time.monotonic()
                await asyncio.gather(*(probe(cid, t, gate) for cid, t in waiting.items()))
                seen.poll_rounds.append(time.monotonic() - round_started)
                seen.load.append(os.getloadavg()[0])
                await asyncio.sleep(poll_interval)

        await asyncio.gather(sender(), poller())
    finally:
        client.close()
    return seen


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def latency_summary(seen: Drive) -> dict[str, Any]:
    """p50/p95/max of accept -> outcome over the sample, outcomes, never-answered count, poll rounds."""
    done = sorted(t.done_at - t.accepted_at for t in seen.tracked.values() if t.done_at is not None)
    summary: dict[str, Any] = {
        "sampled": len(seen.tracked),
        "outcomes": dict(Counter(t.outcome or "none" for t in seen.tracked.values())),
        "never_processed": sum(1 for t in seen.tracked.values() if t.done_at is None),
        "poll_round_p50_s": round(statistics.median(seen.poll_rounds), 2) if seen.poll_rounds else None,
        "load_1m_min_mean_max": [round(min(seen.load), 1), round(statistics.mean(seen.load), 1),
                                 round(max(seen.load), 1)] if seen.load else None,
    }  # fmt: skip
    if done:
        summary |= {
            "p50_s": round(statistics.median(done), 1),
            "p95_s": round(_percentile(done, 0.95), 1),
            "max_s": round(done[-1], 1),
        }
    return summary


# ------------------------------------------------------------------------------------------------
# What the daemon did, and the outcomes table


def _outcome_ids(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT correlation_id FROM stg.command_outcomes")).scalars())
    except sa.exc.ProgrammingError:
        return set()
    finally:
        engine.dispose()


def accepted_without_outcome(url: str, accepted: set[str], timeout: float) -> int:
    """Accepted commands with no row in stg.command_outcomes once ``timeout`` s have passed (or none left)."""
    from bench.daemon_harness import wait_for

    missing: set[str] = set(accepted)

    def covered() -> bool:
        nonlocal missing
        missing = accepted - _outcome_ids(url)
        return not missing

    wait_for(covered, timeout, interval=2.0)
    return len(missing)


def daemon_runs(topic: str, since: float) -> dict[str, Any]:
    """Runs of the commands topic created since ``since``: per job, launch delay and duration."""
    from dagster import DagsterInstance, RunsFilter

    from assets.sources.kafka_topic._sensor import TOPIC_TAG

    instance = DagsterInstance.get()
    records = [
        r
        for r in instance.get_run_records(filters=RunsFilter(tags={TOPIC_TAG: topic}))
        if r.create_timestamp.timestamp() >= since
    ]
    report: dict[str, Any] = {
        "runs": dict(Counter(f"{r.dagster_run.job_name}:{r.dagster_run.status.value}" for r in records))
    }
    spans = [(r.create_timestamp.timestamp(), r.start_time, r.end_time) for r in records]
    for label, values in (
        ("created_to_started_s", [start - created for created, start, _ in spans if start is not None]),
        (
            "started_to_ended_s",
            [end - start for _, start, end in spans if start is not None and end is not None],
        ),
    ):
        if values:
            ordered = sorted(values)
            report[label] = {
                "p50": round(statistics.median(ordered), 1),
                "p95": round(_percentile(ordered, 0.95), 1),
                "max": round(ordered[-1], 1),
            }
    return report


# ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fresh database, topics and instance; daemon and API; warm-up, then the steady phase."""
    from bench.api_load import serve
    from bench.daemon_harness import (
        dagster_daemon,
        drop_database,
        fresh_database,
        instance_home,
        service_urls,
    )

    urls = service_urls()
    kafka = KafkaResource(bootstrap_servers=urls["kafka"], client_id="afluente-bench")
    commands, responses = (f"bench.{name}.{uuid.uuid4().hex[:8]}" for name in ("commands", "responses"))
    kafka.create_topic(commands, partitions=3)
    kafka.create_topic(responses, partitions=2)
    url = fresh_database(urls["pg"], "bench_commands")
    home = instance_home()
    env = {
        "WAREHOUSE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": urls["kafka"],
        "SUBSCRIPTIONS_COMMANDS_TOPIC": commands,
        "SUBSCRIPTIONS_RESPONSES_TOPIC": responses,
        "AFLUENTE_LANDING_DIR": tempfile.mkdtemp(prefix="afluente_bench_landing_"),
    }
    os.environ.update({**env, "DAGSTER_HOME": str(home)})  # serve() hands the environment to the API
    warm_requests, _ = generated_requests(args.warmup, seed=args.seed + 1)
    requests, kinds = generated_requests(args.rate * args.seconds, seed=args.seed)
    results: dict[str, Any] = {
        "rate": args.rate,
        "seconds": args.seconds,
        "commands": len(requests),
        "mix": dict(kinds),
        "nproc": os.cpu_count(),
        "daemon_log": str(home / "daemon.log"),
        "load_1m_at_start": round(os.getloadavg()[0], 1),
    }
    workers = args.workers or os.cpu_count() or 1
    try:
        with dagster_daemon(MODULE, home, env):
            process, base = serve(url, True, workers)
            try:
                started = time.time()
                warm = asyncio.run(drive(base, warm_requests, 5.0, len(warm_requests), 600.0))
                results["warmup"] = latency_summary(warm) | {"daemon_start_to_last_outcome_s": round(
                    max((t.done_at or 0) for t in warm.tracked.values()) - started, 1)}  # fmt: skip
                print(f"warm-up: {results['warmup']}", flush=True)
                steady_started = time.time()
                seen = asyncio.run(drive(base, requests, args.rate, args.sample, args.timeout))
            finally:
                process.terminate()
                process.wait(timeout=30)
            results["answers"] = {str(k): v for k, v in seen.answers.items()}
            results["accepted"] = len(seen.accepted)
            results["send_seconds"] = round(seen.send_seconds, 1)
            results["latency"] = latency_summary(seen)
            results["accepted_without_outcome"] = accepted_without_outcome(
                url, set(seen.accepted), args.timeout
            )
            results["daemon"] = daemon_runs(commands, steady_started)
            results["load_1m_at_end"] = round(os.getloadavg()[0], 1)
    finally:
        drop_database(urls["pg"], url)
        kafka.delete_topic(commands)
        kafka.delete_topic(responses)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=200, help="commands per second (default 200)")
    parser.add_argument("--seconds", type=int, default=60, help="length of the steady phase (default 60)")
    parser.add_argument("--sample", type=int, default=300, help="commands followed on /status (default 300)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds after the last send (default 300)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="warm-up commands (default 20)")
    parser.add_argument("--workers", type=int, default=0, help="API workers (0: one per core)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C: the daemon and the API are stopped, the
    # database and topics dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = run(args)
    from bench.api_load import OUT

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "commands_latency.json").write_text(json.dumps(results, indent=2))
    latency = results["latency"]
    print(json.dumps(results, indent=2))
    print(
        f"\n{results['accepted']} commands accepted at {args.rate}/s for {args.seconds} s "
        f"(sent in {results['send_seconds']} s), answers {results['answers']}\n"
        f"accept -> processed/rejected over {latency['sampled']} sampled: p50 {latency.get('p50_s')} s  "
        f"p95 {latency.get('p95_s')} s  max {latency.get('max_s')} s  "
        f"(poll round {latency['poll_round_p50_s']} s)\n"
        f"never processed within {args.timeout:.0f} s: {latency['never_processed']}; accepted without an "
        f"outcome row: {results['accepted_without_outcome']}; load average (1 min) during the phase "
        f"min/mean/max {latency['load_1m_min_mean_max']} on {results['nproc']} cores"
    )
    p95 = latency.get("p95_s")
    print(
        f"target p95 < {TARGET_P95_S:.0f} s: {'met' if p95 is not None and p95 < TARGET_P95_S else 'MISSED'}"
    )
    lost = latency["never_processed"] or results["accepted_without_outcome"]
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
