"""The commerce Kafka benchmark's daemon phase: run overhead of a small batch, event-to-API freshness.

``dagster-daemon`` loads the code location of :mod:`bench.commerce_kafka` (its ``defs``); one batch of
1,000 events is timed from producer flush to run success (once while the backlog is staged, once in
steady state), then events stream at a fixed rate while the read API is probed every second for the
age of the newest event it serves.
"""

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from assets.sources.kafka_topic._sensor import TOPIC_TAG
from bench.daemon_harness import dagster_daemon, instance_home, wait_for
from resources.run_status import IN_FLIGHT_STATUSES


def _small_batch(
    instance: DagsterInstance, runs_for_topic: Callable[[], list], bootstrap: str, topic: str, seed: int
) -> dict | str:
    """Produce 1,000 events; time producer flush -> run created -> run success, and the ingest step."""
    from generators.commerce import generate_events, produce_to_kafka

    known = {r.dagster_run.run_id for r in runs_for_topic()}
    produced_at = time.time()
    produce_to_kafka(generate_events(1000, seed=seed), bootstrap, topic)
    flushed_at = time.time()

    def new_success() -> Any:
        for record in runs_for_topic():
            if (
                record.dagster_run.run_id not in known
                and record.dagster_run.status == DagsterRunStatus.SUCCESS
            ):
                return record
        return None

    record = wait_for(new_success, timeout=180, interval=0.25)
    if record is None:
        return "no successful run within 180 s (see daemon.log)"
    run_id = record.dagster_run.run_id
    stats = instance.get_run_stats(run_id)
    steps = {s.step_key: s for s in instance.get_run_step_stats(run_id)}
    ingest = steps.get("raw_commerce_events")
    created = record.create_timestamp.timestamp()
    return {
        "produce_s": round(flushed_at - produced_at, 2),
        "flush_to_run_created_s": round(created - flushed_at, 2),
        "run_created_to_success_s": round((stats.end_time or created) - created, 2),
        "run_started_to_success_s": round((stats.end_time or 0) - (stats.start_time or 0), 2),
        "ingest_step_s": round((ingest.end_time or 0) - (ingest.start_time or 0), 2) if ingest else None,
        "flush_to_committed_s": round((stats.end_time or created) - flushed_at, 2),
    }


def daemon_measurements(
    bootstrap: str, topic: str, pg_url: str, stream_rate: float, stream_seconds: float
) -> dict:
    """Start dagster-daemon on this module; measure one small batch and the event-to-API freshness."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from generators.commerce import generate_events

    home = instance_home()
    env = {"WAREHOUSE_URL": pg_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "COMMERCE_KAFKA_TOPIC": topic}
    results: dict = {"daemon_log": str(home / "daemon.log")}
    with dagster_daemon("bench.commerce_kafka", home, env):
        os.environ["DAGSTER_HOME"] = str(home)
        instance = DagsterInstance.get()

        def runs_for_topic() -> list:
            return list(instance.get_run_records(filters=RunsFilter(tags={TOPIC_TAG: topic})))

        # Wait until the daemon has caught up with the backlog (nothing queued or running).
        wait_for(lambda: runs_for_topic() is not None, 5)
        time.sleep(15)
        wait_for(
            lambda: not instance.get_run_records(filters=RunsFilter(statuses=IN_FLIGHT_STATUSES)),
            timeout=600,
            interval=1.0,
        )
        known = {r.dagster_run.run_id for r in runs_for_topic()}

        # 1) One small batch: 1,000 events, sensor tick -> run success. The first one also stages
        # the 1M backlog; a second one, once the marts have caught up, is the steady-state overhead.
        results["small_batch"] = _small_batch(instance, runs_for_topic, bootstrap, topic, seed=777)

        # 2) Freshness: first let the marts absorb the 1M-event backlog (their first build), then
        # stream at stream_rate; every second, the age of the newest event the API serves.
        client = TestClient(create_app(pg_url))
        backlog_started = time.time()

        def marts_caught_up() -> bool:
            response = client.get("/api/metrics/summary")
            return response.status_code == 200 and response.json().get("total_events", 0) >= 999_000

        caught_up = wait_for(marts_caught_up, timeout=900, interval=2.0)
        results["backlog_marts_s"] = round(time.time() - backlog_started, 1) if caught_up else None
        wait_for(
            lambda: not instance.get_run_records(filters=RunsFilter(statuses=IN_FLIGHT_STATUSES)), 600, 1.0
        )
        results["small_batch_steady"] = _small_batch(instance, runs_for_topic, bootstrap, topic, seed=778)
        lags: list[float] = []
        stop_at = time.time() + stream_seconds
        stream = generate_events(None, seed=999)
        from kafka import KafkaProducer

        from generators.commerce import producer_config

        producer = KafkaProducer(**producer_config(bootstrap))
        sent = 0
        next_probe = time.time() + 1
        warmup_until = time.time() + min(15.0, stream_seconds / 4)
        try:
            while time.time() < stop_at:
                due = int((time.time() - (stop_at - stream_seconds)) * stream_rate)
                while sent < due:
                    item = next(stream)
                    producer.send(topic, key=item.key.encode(), value=item.value)
                    sent += 1
                producer.flush()
                if time.time() >= next_probe:
                    next_probe += 1
                    body = client.get("/api/metrics/summary").json()
                    newest = body.get("last_event_at")
                    if newest and time.time() > warmup_until:
                        from datetime import UTC, datetime

                        seen = datetime.fromisoformat(newest).replace(tzinfo=UTC).timestamp()
                        lags.append(time.time() - seen)
                time.sleep(0.05)
        finally:
            producer.close()
        if lags:
            ordered = sorted(lags)
            results["freshness"] = {
                "stream_rate_events_s": stream_rate,
                "stream_seconds": stream_seconds,
                "probes": len(lags),
                "p50_s": round(statistics.median(ordered), 1),
                "p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
                "max_s": round(ordered[-1], 1),
            }
        runs = runs_for_topic()
        results["runs_during_daemon_phase"] = len([r for r in runs if r.dagster_run.run_id not in known])
    return results
