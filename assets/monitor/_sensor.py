"""The system_logs sensor: requests a monitor run when there is something to do, never waits for it.

A tick looks at cheap signals only: bytes in the fallback directory (a replay is due), log files
grown past their recorded position (a ``stat`` each), Kafka end offsets past the recorded ones (one
metadata call per topic with a short timeout; an unreachable broker only skips that signal), and a
run every 12 hours so the retention is applied even when nothing arrives. It skips while a run of the job is
in flight (one pass at a time) and reports what it saw in the cursor.
"""

import json
import time
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.monitor._ledger import FILE, KAFKA, read_positions
from assets.monitor._pass import MonitorConfig
from assets.monitor._sources import end_offsets, matching_files, new_bytes_start
from resources.kafka import KafkaResource
from resources.run_status import IN_FLIGHT_STATUSES
from resources.warehouse import WarehouseResource

TICK_KAFKA_TIMEOUT_S = 2.0
# At least two runs a day: the retention is applied and the asset stays within its freshness window
# (FRESHNESS_DEFAULT_MINUTES, a day) even when nothing arrives.
PERIODIC_S = 12 * 3600


def pending_work(config: MonitorConfig, warehouse: WarehouseResource, kafka: KafkaResource) -> dict[str, Any]:
    """What a pass would have to do now: backlog bytes, new log bytes, new Kafka offsets."""
    seen: dict[str, Any] = {"backlog_bytes": config.spool().size()}
    files = matching_files(config.log_patterns)
    positions = read_positions(warehouse, FILE)
    seen["new_log_bytes"] = sum(
        size - new_bytes_start(positions.get((identity, 0)), size) for identity, (_, size) in files.items()
    )
    offsets = read_positions(warehouse, KAFKA)
    new_offsets = 0
    consumer = kafka.range_consumer({"socket.timeout.ms": int(TICK_KAFKA_TIMEOUT_S * 1000)})
    try:
        for topic in config.topics:
            marks = end_offsets(consumer, topic, TICK_KAFKA_TIMEOUT_S) or {}
            for partition, (low, high) in marks.items():
                recorded = offsets.get((topic, partition))
                new_offsets += high - max(low, recorded.position if recorded else low)
    except Exception as exc:  # noqa: BLE001 - an unreachable broker must not fail or stall the tick
        seen["kafka_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        consumer.close()
    seen["new_offsets"] = new_offsets
    return seen


def build_monitor_sensor(
    *, name: str, job: Any, minimum_interval_seconds: int, default_status: DefaultSensorStatus
) -> SensorDefinition:
    """The sensor requesting ``job`` (one monitor pass) when :func:`pending_work` finds any."""

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Requests a system_logs monitor run when Kafka topics or log files have new data, when the "
            "fallback file holds documents to replay, and every 12 hours for the retention."
        ),
    )
    def _system_logs_sensor(
        context: SensorEvaluationContext, warehouse: WarehouseResource, kafka: KafkaResource
    ) -> SensorResult | SkipReason:
        flying = context.instance.get_runs(
            RunsFilter(job_name=job.name, statuses=list(IN_FLIGHT_STATUSES)), limit=1
        )
        if flying:
            return SkipReason(f"run {flying[0].run_id} of {job.name} is in flight")
        cursor = json.loads(context.cursor) if context.cursor else {}
        seen = pending_work(MonitorConfig.from_settings(), warehouse, kafka)
        now = time.time()
        periodic = now - float(cursor.get("last_request_at", 0)) >= PERIODIC_S
        reasons = [k for k in ("backlog_bytes", "new_log_bytes", "new_offsets") if seen[k] > 0]
        if periodic:
            reasons.append("periodic")
        cursor = {**cursor, "seen": seen}
        if not reasons:
            return SensorResult(skip_reason=f"nothing new: {seen}", cursor=json.dumps(cursor))
        cursor["last_request_at"] = now
        return SensorResult(
            run_requests=[RunRequest(tags={"afluente/system_logs_reasons": ",".join(reasons)})],
            cursor=json.dumps(cursor),
        )

    return _system_logs_sensor
