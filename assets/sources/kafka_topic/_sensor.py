"""Kafka offsets sensors: request runs for exactly the offset ranges the warehouse does not hold yet.

Each tick makes only fast metadata calls to Kafka (partitions, beginning and end offsets: no
polling), reads the covered ranges from the warehouse ledger (``raw.kafka_offsets``, written in the
same transaction as the rows) and the ranges of runs still in flight, and requests runs for the
rest: ranges of at most ``max_events_per_run`` offsets, small ranges of several partitions packed
into one run to amortize run start-up.

Run keys are ``<topic>/<p>:<start>-<end>[,...]#<attempt>``: Dagster never launches the same key
twice, so a range is never requested twice while it is queued, running or done. When a run fails,
its range is still missing from the ledger on a later tick; the attempt number (runs already
tagged with that range + 1) gives it a new key. Partitions added to the topic are picked up on
the next tick because the partition list is read every tick. The cursor only records what the
last tick saw, for the UI; deleting it changes nothing.
"""

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from kafka.errors import KafkaError

from assets.sources.kafka_topic._ledger import (
    OffsetRange,
    Range,
    chunk_range,
    format_ranges,
    merge_ranges,
    parse_ranges,
    read_covered,
    subtract_ranges,
)
from assets.sources.kafka_topic._tables import TopicTables
from resources.bulk_write import existing_columns
from resources.kafka import KafkaResource
from resources.run_status import IN_FLIGHT_STATUSES
from resources.warehouse import WarehouseResource

# A JobDefinition, or what define_asset_job returns (its class is not exported by dagster).
ExecutableDefinition = Any

PIPELINE_TAG = "afluente/kafka_pipeline"
TOPIC_TAG = "afluente/kafka_topic"
RANGES_TAG = "afluente/kafka_ranges"
RANGE_KEY_TAG = "afluente/kafka_range_key"
# One tag per consumed partition (<prefix><p> = topic): dagster.yaml allows one run per partition.
PARTITION_TAG_PREFIX = "afluente/kafka_partition."


@dataclass(frozen=True)
class PlannedRun:
    """One run to request: its ranges (at most one run's worth of offsets in total)."""

    ranges: tuple[OffsetRange, ...]

    @property
    def offsets(self) -> int:
        return sum(r.size for r in self.ranges)

    def range_key(self, topic: str) -> str:
        return f"{topic}/{format_ranges(self.ranges)}"


@dataclass(frozen=True)
class TickPlan:
    runs: list[PlannedRun]
    missing_offsets: int  # not covered by the ledger nor by runs in flight
    deferred_offsets: int  # missing but left for a later tick (max runs per tick)


def topic_offsets(kafka: KafkaResource, topic: str) -> dict[int, tuple[int, int]]:
    """``{partition: (log start offset, log end offset)}``; ``{}`` when the topic does not exist.

    Metadata and ListOffsets requests only: nothing is fetched.
    """
    from kafka import TopicPartition

    consumer = kafka.consumer(bootstrap_timeout_ms=5000)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return {}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        begins = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        return {tp.partition: (int(begins[tp]), int(ends[tp])) for tp in tps}
    finally:
        consumer.close()


def plan_kafka_runs(
    partitions: Mapping[int, tuple[int, int]],
    covered: Mapping[int, Sequence[Range]],
    in_flight: Mapping[int, Sequence[Range]],
    *,
    max_events_per_run: int,
    max_runs: int,
) -> TickPlan:
    """Pure decision logic of a tick (unit-tested without Kafka or Dagster).

    Missing offsets of each partition (between its log start and end, not covered, not in flight)
    are cut into chunks of ``max_events_per_run`` aligned on the gap start, so the same backlog
    always yields the same ranges (and run keys). Full chunks get a run each; partial chunks of
    several partitions share runs (first fit, largest first). Runs alternate between partitions so
    concurrent runs spread over them; at most ``max_runs`` are returned, oldest offsets first.
    """
    max_events_per_run = max(1, max_events_per_run)
    per_partition: dict[int, list[Range]] = {}
    missing = 0
    for partition, (log_start, log_end) in sorted(partitions.items()):
        busy = merge_ranges([*covered.get(partition, []), *in_flight.get(partition, [])])
        gaps = subtract_ranges((log_start, log_end), busy)
        missing += sum(e - s for s, e in gaps)
        per_partition[partition] = [c for gap in gaps for c in chunk_range(gap, max_events_per_run)]

    full: dict[int, list[OffsetRange]] = {}
    partial: list[OffsetRange] = []
    for partition, chunks in per_partition.items():
        for start, end in chunks:
            item = OffsetRange(partition, start, end)
            if item.size == max_events_per_run:
                full.setdefault(partition, []).append(item)
            else:
                partial.append(item)

    runs: list[PlannedRun] = []
    # Round-robin over partitions for full chunks, oldest first within each partition.
    queues = [list(items) for _, items in sorted(full.items())]
    while any(queues):
        for q in queues:
            if q:
                runs.append(PlannedRun((q.pop(0),)))
    bins: list[list[OffsetRange]] = []
    for item in sorted(partial, key=lambda r: (-r.size, r.partition, r.start_offset)):
        for bin_ in bins:
            if sum(r.size for r in bin_) + item.size <= max_events_per_run:
                bin_.append(item)
                break
        else:
            bins.append([item])
    runs.extend(PlannedRun(tuple(sorted(b))) for b in bins)
    chosen = runs[:max_runs]
    deferred = sum(r.offsets for r in runs[max_runs:])
    return TickPlan(chosen, missing, deferred)


def in_flight_ranges(
    context: SensorEvaluationContext, pipeline: str, topic: str, timeout_s: float
) -> dict[int, list[Range]]:
    """Ranges of this pipeline's runs that are queued or running (younger than ``timeout_s``)."""
    records = context.instance.get_run_records(
        filters=RunsFilter(tags={PIPELINE_TAG: pipeline, TOPIC_TAG: topic}, statuses=IN_FLIGHT_STATUSES)
    )
    now = time.time()
    ranges: dict[int, list[Range]] = {}
    for record in records:
        created = record.create_timestamp.timestamp()
        if now - created > timeout_s:
            context.log.warning(
                f"run {record.dagster_run.run_id} ({record.dagster_run.status.value}) has been in flight "
                f"for {now - created:.0f}s; its ranges may be requested again"
            )
            continue
        for item in parse_ranges(record.dagster_run.tags.get(RANGES_TAG, "")):
            ranges.setdefault(item.partition, []).append((item.start_offset, item.end_offset))
    return ranges


def catch_up_should_wait(
    context: SensorEvaluationContext, pipeline: str, topic: str, job_name: str, timeout_s: float
) -> bool:
    """Whether the next ``job_name`` run of this pipeline and topic should wait (coalesce).

    At most one refresh run waits behind the one executing: while a run is queued or starting, or
    two are in flight, new offsets wait for the next one. A run may start while the previous one
    still builds the models, so its launch (seconds: a new process importing the code location)
    overlaps that work; the per-model pools keep the two runs' builds of a model in order.
    Runs older than ``timeout_s`` are ignored.
    """
    records = context.instance.get_run_records(
        filters=RunsFilter(
            job_name=job_name,
            tags={PIPELINE_TAG: pipeline, TOPIC_TAG: topic},
            statuses=IN_FLIGHT_STATUSES,
            created_after=datetime.now(UTC) - timedelta(seconds=timeout_s),
        ),
        limit=2,
    )
    waiting = any(r.dagster_run.status != DagsterRunStatus.STARTED for r in records)
    return waiting or len(records) >= 2


def build_kafka_offsets_sensor(
    *,
    name: str,
    job: ExecutableDefinition,
    tables: TopicTables,
    topic: Callable[[], str],
    run_config: Callable[[str, Sequence[OffsetRange]], Mapping[str, Any]],
    max_events_per_run: Callable[[], int],
    max_runs_per_tick: Callable[[], int],
    in_flight_timeout_s: Callable[[], float],
    minimum_interval_seconds: int,
    description: str,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    catch_up_job: ExecutableDefinition | None = None,
    use_catch_up_job: Callable[[], bool] = lambda: False,
) -> SensorDefinition:
    """A sensor requesting ``job`` runs for the missing offset ranges of ``topic()``.

    Settings are callables so they are read at tick time (environment of the daemon).
    ``run_config(topic, ranges)`` builds the run config that makes the run consume exactly those
    ranges. ``catch_up_job`` (same ingest op and config, plus the models downstream) replaces
    ``job`` for the one run that catches up with the topic, when ``use_catch_up_job()``: in steady
    streaming every cycle is then one run launch instead of an ingest run plus an automation run.
    """
    jobs = [job] if catch_up_job is None else [job, catch_up_job]

    @sensor(
        name=name,
        jobs=jobs,
        description=description,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
    )
    def _kafka_offsets_sensor(
        context: SensorEvaluationContext, kafka: KafkaResource, warehouse: WarehouseResource
    ) -> SensorResult | SkipReason:
        topic_name = topic()
        pipeline = tables.pipeline
        # In-flight runs are read BEFORE the ledger: a run that commits in between is then seen
        # by one of the two, never by neither.
        flying = in_flight_ranges(context, pipeline, topic_name, in_flight_timeout_s())
        try:
            offsets = topic_offsets(kafka, topic_name)
        except KafkaError as exc:
            return SkipReason(f"Kafka at {kafka.bootstrap_servers} unreachable: {exc}")
        if not offsets:
            return SkipReason(f"topic {topic_name!r} does not exist (yet)")
        with warehouse.connect() as conn:
            exists = existing_columns(conn, *tables.offsets) is not None
            covered = read_covered(conn, tables, topic_name) if exists else {}
        plan = plan_kafka_runs(
            offsets,
            covered,
            flying,
            max_events_per_run=max_events_per_run(),
            max_runs=max_runs_per_tick(),
        )
        cursor = json.dumps(
            {
                "end_offsets": {str(p): end for p, (_, end) in offsets.items()},
                "missing_offsets": plan.missing_offsets,
                "in_flight_offsets": sum(e - s for spans in flying.values() for s, e in spans),
            },
            sort_keys=True,
        )
        if not plan.runs:
            lag = sum(e - s for spans in flying.values() for s, e in spans)
            return SensorResult(
                skip_reason=SkipReason(
                    f"{topic_name}: nothing missing ({len(offsets)} partitions, {lag} offsets in flight)"
                ),
                cursor=cursor,
            )
        # One run reaching every partition's end (nothing deferred): the feed is caught up.
        catching_up = len(plan.runs) == 1 and plan.deferred_offsets == 0
        target = job
        if catch_up_job is not None and catching_up and use_catch_up_job():
            if catch_up_should_wait(context, pipeline, topic_name, catch_up_job.name, in_flight_timeout_s()):
                # Coalesce: the waiting refresh run takes everything that arrives meanwhile, instead of
                # a queue of runs each rebuilding the same models one after the other.
                return SensorResult(
                    skip_reason=SkipReason(
                        f"{topic_name}: {plan.missing_offsets} new offsets wait for the {catch_up_job.name} "
                        "run in flight"
                    ),
                    cursor=cursor,
                )
            target = catch_up_job
        requests = []
        for planned in plan.runs:
            range_key = planned.range_key(topic_name)
            attempts = context.instance.get_runs_count(filters=RunsFilter(tags={RANGE_KEY_TAG: range_key}))
            requests.append(
                RunRequest(
                    run_key=f"{range_key}#{attempts + 1}",
                    job_name=target.name,
                    run_config=dict(run_config(topic_name, planned.ranges)),
                    tags={
                        PIPELINE_TAG: pipeline,
                        TOPIC_TAG: topic_name,
                        RANGES_TAG: format_ranges(planned.ranges),
                        RANGE_KEY_TAG: range_key,
                        **{f"{PARTITION_TAG_PREFIX}{r.partition}": topic_name for r in planned.ranges},
                        "afluente/attempt": str(attempts + 1),
                    },
                )
            )
        requested = sum(r.offsets for r in plan.runs)
        context.log.info(
            f"{topic_name}: requesting {len(requests)} {target.name} run(s) for {requested} offsets "
            f"({plan.missing_offsets} missing, {plan.deferred_offsets} deferred to later ticks)"
        )
        return SensorResult(run_requests=requests, cursor=cursor)

    return _kafka_offsets_sensor
