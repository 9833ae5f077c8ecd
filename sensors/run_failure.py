"""Run-failure sensor: every failed step becomes an incident; transient ones are re-executed, bounded.

For each failed run of this code location the sensor reads the run's event log (step failures with
their serialized errors, planned and materialized assets), diagnoses each failed step with
:func:`resources.error_diagnosis.diagnose` and writes one row per failed step to ``ops.incidents``
(one transaction, ``ON CONFLICT DO NOTHING`` on ``incident_id`` = run id + step key hash, so a
failure evaluated twice is recorded once). When every failed step is transient, the re-execution
bound is not reached and no newer run already covers the assets, it re-executes from failure.

How it re-executes: a ``RunRequest`` that re-targets exactly the assets the failed run planned but
did not materialize (the failed steps and everything downstream that was skipped), with the same
run config, the same partition tags and the run's own tags (so the Kafka and MongoDB sensors see
it in flight), plus ``afluente/reexecution_root|of|attempt`` tags. It is the public sensor API:
evaluating it never blocks the tick (the daemon launches the run), the run key
``self-healing:<run>:<job>`` makes a second evaluation launch nothing, and it needs no webserver.
The alternatives were worse: GraphQL ``launchPipelineReexecution`` (FROM_FAILURE) makes the sensor
an HTTP client of the webserver (URL, availability, auth) and ``DagsterInstance.create_reexecuted_run``
needs internal workspace objects. Outputs are not reused in memory, which costs nothing here:
every asset is stored in the warehouse, so the re-executed steps load their inputs from it. A
``RunRequest`` must name a job the sensor declares; an asset job cannot mix partitions
definitions, hence one re-execution job per partitions definition (``orchestration/self_healing``).

The decision does not depend on the warehouse (often the very service that is down): when
``ops.incidents`` cannot be written, the decision is kept in the failed run's tags
(``afluente/incident_pending``) and ``incident_upkeep_sensor`` writes the rows later; that sensor
also fills ``retry_run_id`` once the daemon has created the re-execution run.

Bound: re-execution runs of one original run share ``afluente/reexecution_root``; at most
``AFLUENTE_MAX_AUTO_REEXECUTIONS`` such runs are launched, then the incident says ``gave_up``.

Dagster run retries (``run_retries`` in ``dagster.yaml``): when the instance will retry a run
itself, Dagster tags it ``dagster/will_retry=true`` before this sensor sees it; the sensor then
records the incident with action ``reexecuted`` (by Dagster) and launches nothing, so a run is
never retried twice; ``retry_run_id`` is linked through ``dagster/parent_run_id``. Recommended
setting: ``run_retries: {enabled: true, max_retries: 1, retry_on_asset_or_op_failure: false}``:
Dagster retries runs whose worker crashed, this sensor handles step failures with a diagnosis
(Dagster would otherwise retry permanent errors too). Runs this sensor launches carry
``dagster/retry_on_asset_or_op_failure=false`` for the same reason.
"""

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from dagster import (
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from resources.bulk_write import quote_ident
from resources.error_diagnosis import MAX_MESSAGE_CHARS, Diagnosis, diagnose, error_summary
from resources.settings import setting_int
from resources.warehouse import WarehouseResource

INCIDENTS_SCHEMA = "ops"
INCIDENTS_TABLE = "incidents"
INCIDENT_COLUMNS = (
    "incident_id",
    "detected_at",
    "run_id",
    "job_name",
    "asset_keys",
    "step_key",
    "error_class",
    "error_message",
    "diagnosis",
    "explanation",
    "action",
    "attempt",
    "root_run_id",
    "retry_run_id",
)

ROOT_TAG = "afluente/reexecution_root"
PARENT_TAG = "afluente/reexecution_of"
ATTEMPT_TAG = "afluente/reexecution_attempt"
SELF_HEALING_TAG = "afluente/self_healing"
# Set on a failed run whose incidents could not be written: the decision, for the upkeep sensor.
PENDING_TAG = "afluente/incident_pending"
REASON_TAG = "afluente/incident_reason"
MAX_REASON_CHARS = 500
ACTIONS = ("reexecuted", "gave_up", "none")
SENSOR_LOCK_WAIT_S = 20.0
WILL_RETRY_TAG = "dagster/will_retry"
PARTITION_TAGS = (
    "dagster/partition",
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
)
# Runs launched here: step failures come back to this sensor, not to Dagster's run retries.
NO_DAEMON_STEP_RETRY = {"dagster/retry_on_asset_or_op_failure": "false"}

_SUPERSEDING_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.SUCCESS,
]
_SUPERSEDING_LOOKAHEAD = 25
# A run that started, then failed with no failed step and no error: its worker process died
# (SIGKILL, out of memory, host or code server restart). Nothing in the run failed by itself, so
# what it did not materialize is re-executed like a transient failure (its ingest may have
# committed; the models after it must still be rebuilt).
WORKER_CRASH = Diagnosis(
    "transient",
    "RunWorkerCrash",
    "the run worker process died mid-run (killed, out of memory, host or code server restart)",
)


# ------------------------------------------------------------------------------------------------
# ops.incidents


@dataclass(frozen=True)
class Incident:
    """One row of ``ops.incidents``: one failed step of one run (``step_key`` None: the run itself)."""

    run_id: str
    job_name: str
    asset_keys: str
    step_key: str | None
    error_class: str
    error_message: str
    diagnosis: str
    explanation: str
    action: str
    attempt: int
    root_run_id: str
    retry_run_id: str | None = None
    detected_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))

    @property
    def incident_id(self) -> str:
        return incident_id_for(self.run_id, self.step_key)

    def row(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "detected_at": self.detected_at,
            "run_id": self.run_id,
            "job_name": self.job_name,
            "asset_keys": self.asset_keys,
            "step_key": self.step_key,
            "error_class": self.error_class,
            "error_message": self.error_message[:MAX_MESSAGE_CHARS],
            "diagnosis": self.diagnosis,
            "explanation": self.explanation,
            "action": self.action,
            "attempt": self.attempt,
            "root_run_id": self.root_run_id,
            "retry_run_id": self.retry_run_id,
        }


def incident_id_for(run_id: str, step_key: str | None) -> str:
    """Stable id: the same failed step of the same run always maps to the same row."""
    return f"{run_id}:{hashlib.sha256((step_key or '').encode()).hexdigest()[:16]}"


def ensure_incidents_table(conn: sa.Connection) -> None:
    """Create ``ops.incidents`` if needed (same DDL on DuckDB and PostgreSQL)."""
    conn.execute(sa.schema.CreateSchema(INCIDENTS_SCHEMA, if_not_exists=True))
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {quote_ident(conn, INCIDENTS_SCHEMA, INCIDENTS_TABLE)} ("
        "incident_id TEXT PRIMARY KEY, detected_at TIMESTAMP NOT NULL, run_id TEXT NOT NULL, "
        "job_name TEXT, asset_keys TEXT, step_key TEXT, error_class TEXT, error_message TEXT, "
        "diagnosis TEXT NOT NULL, explanation TEXT, action TEXT NOT NULL, attempt INTEGER NOT NULL, "
        "root_run_id TEXT, retry_run_id TEXT)"
    )


def record_incidents(warehouse: WarehouseResource, incidents: Sequence[Incident]) -> int:
    """Insert the incidents of one run in one transaction; already recorded ones are left as they are."""
    if not incidents:
        return 0
    with warehouse.begin() as conn:
        ensure_incidents_table(conn)
        table = quote_ident(conn, INCIDENTS_SCHEMA, INCIDENTS_TABLE)
        count = sa.text(f"SELECT COUNT(*) FROM {table} WHERE run_id IN :runs").bindparams(
            sa.bindparam("runs", expanding=True)
        )
        runs = {"runs": sorted({incident.run_id for incident in incidents})}
        before = conn.execute(count, runs).scalar() or 0
        columns = ", ".join(INCIDENT_COLUMNS)
        values = ", ".join(f":{name}" for name in INCIDENT_COLUMNS)
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (incident_id) DO NOTHING"
            ),
            [incident.row() for incident in incidents],
        )
        after = conn.execute(count, runs).scalar() or 0
    return int(after) - int(before)


def recorded_incidents(warehouse: WarehouseResource, run_id: str) -> list[dict[str, Any]]:
    """The incidents already recorded for a run (empty when the table does not exist yet)."""
    if not warehouse.table_exists(INCIDENTS_SCHEMA, INCIDENTS_TABLE):
        return []
    with warehouse.connect() as conn:
        table = quote_ident(conn, INCIDENTS_SCHEMA, INCIDENTS_TABLE)
        result = conn.execute(
            sa.text(f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM {table} WHERE run_id = :run_id"),
            {"run_id": run_id},
        )
        return [dict(row._mapping) for row in result]


def link_retry_run(warehouse: WarehouseResource, parent_run_id: str, retry_run_id: str) -> int:
    """Fill ``retry_run_id`` of a run's re-executed incidents once the daemon launched the retry."""
    if not warehouse.table_exists(INCIDENTS_SCHEMA, INCIDENTS_TABLE):
        return 0
    with warehouse.begin() as conn:
        table = quote_ident(conn, INCIDENTS_SCHEMA, INCIDENTS_TABLE)
        result = conn.execute(
            sa.text(
                f"UPDATE {table} SET retry_run_id = :retry WHERE run_id = :parent "
                "AND action = 'reexecuted' AND retry_run_id IS NULL"
            ),
            {"retry": retry_run_id, "parent": parent_run_id},
        )
        return int(result.rowcount or 0)


# ------------------------------------------------------------------------------------------------
# What failed, and what can be re-executed


@dataclass(frozen=True)
class ReexecutionTargets:
    """Which re-execution job runs each asset, and which assets can only run together."""

    job_by_key: Mapping[AssetKey, str]
    inseparable: Mapping[AssetKey, frozenset[AssetKey]] = field(default_factory=dict)
    partitioned_jobs: frozenset[str] = frozenset()

    def plan(self, keys: Iterable[AssetKey]) -> tuple[dict[str, set[AssetKey]], set[AssetKey]]:
        """Keys grouped by job (non-subsettable multi-assets completed); keys no job covers."""
        by_job: dict[str, set[AssetKey]] = {}
        orphans: set[AssetKey] = set()
        for key in keys:
            job = self.job_by_key.get(key)
            if job is None:
                orphans.add(key)
                continue
            by_job.setdefault(job, set()).update(self.inseparable.get(key, frozenset({key})))
        return by_job, orphans


@dataclass(frozen=True)
class FailedStep:
    step_key: str | None
    asset_keys: tuple[AssetKey, ...]
    diagnosis: Diagnosis
    error_message: str


@dataclass(frozen=True)
class FailedRun:
    """The failure of one run as read from its event log."""

    run: DagsterRun
    steps: tuple[FailedStep, ...]
    pending_keys: frozenset[AssetKey]  # planned but not materialized: what "from failure" runs

    @property
    def attempt(self) -> int:
        return int(self.run.tags.get(ATTEMPT_TAG, "1"))

    @property
    def root_run_id(self) -> str:
        return self.run.tags.get(ROOT_TAG) or self.run.root_run_id or self.run.run_id


def user_string(keys: Iterable[AssetKey]) -> str:
    return ",".join(sorted(key.to_user_string() for key in keys))


def read_failed_run(
    instance: DagsterInstance,
    run: DagsterRun,
    step_failures: Sequence[DagsterEvent],
    run_failure: DagsterEvent | None,
) -> FailedRun:
    """Failed steps with their assets and diagnosis; the assets still to materialize."""
    planned: dict[AssetKey, str | None] = {}
    materialized: set[AssetKey] = set()
    records = instance.get_records_for_run(
        run.run_id,
        of_type={
            DagsterEventType.RUN_START,
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
            DagsterEventType.ASSET_MATERIALIZATION,
        },
    ).records
    started = False
    for record in records:
        event = record.event_log_entry.dagster_event
        started = started or (event is not None and event.event_type == DagsterEventType.RUN_START)
        if event is None or event.asset_key is None:
            continue
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            planned[event.asset_key] = event.step_key
        else:
            materialized.add(event.asset_key)
    pending = frozenset(planned) - materialized
    steps = []
    for event in step_failures:
        error = getattr(event.event_specific_data, "error", None)
        keys = tuple(sorted((k for k, step in planned.items() if step == event.step_key), key=str))
        steps.append(FailedStep(event.step_key, keys, diagnose(error), error_summary(error)))
    if not steps:  # the run failed outside any step (run worker crash, launch or resource error)
        error = getattr(getattr(run_failure, "event_specific_data", None), "error", None)
        message = error_summary(error) or str(getattr(run_failure, "message", "") or "run failed")
        diagnosis = WORKER_CRASH if error is None and started else diagnose(error)
        steps.append(FailedStep(None, tuple(sorted(pending, key=str)), diagnosis, message))
    return FailedRun(run=run, steps=tuple(steps), pending_keys=pending)


def _partition_tags(run: DagsterRun) -> dict[str, str]:
    return {tag: run.tags[tag] for tag in PARTITION_TAGS if tag in run.tags}


def superseding_run(instance: DagsterInstance, failed: FailedRun) -> str | None:
    """A run created after the failed one that (re)materializes all its pending assets.

    Every asset here recomputes from durable state (ledgers, watermarks, tables), so such a run
    makes a re-execution redundant; it is how the Kafka and MongoDB sensors' own re-requests are
    not duplicated.
    """
    record = instance.get_run_record_by_id(failed.run.run_id)
    if record is None or not failed.pending_keys:
        return None
    partition = _partition_tags(failed.run)
    candidates = instance.get_run_records(
        filters=RunsFilter(created_after=record.create_timestamp, statuses=_SUPERSEDING_STATUSES),
        limit=_SUPERSEDING_LOOKAHEAD,
        ascending=True,
    )
    for candidate in candidates:
        run = candidate.dagster_run
        if run.run_id == failed.run.run_id or _partition_tags(run) != partition:
            continue
        keys = set(run.asset_selection or ())
        if not keys:
            planned = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ).records
            keys = {
                event.asset_key
                for r in planned
                if (event := r.event_log_entry.dagster_event) is not None and event.asset_key is not None
            }
        if failed.pending_keys <= keys:
            return run.run_id
    return None


@dataclass(frozen=True)
class Decision:
    action: str  # reexecuted | gave_up | none
    reason: str
    requests: tuple[RunRequest, ...] = ()


def reexecution_requests(
    failed: FailedRun, by_job: Mapping[str, set[AssetKey]], partitioned_jobs: frozenset[str]
) -> tuple[RunRequest, ...]:
    """One ``RunRequest`` per re-execution job: same config, partition and tags, from failure."""
    run = failed.run
    user_tags = {
        key: value
        for key, value in run.tags.items()
        if not key.startswith(("dagster/", ".dagster", "dagster-"))
        and key not in (ROOT_TAG, PARENT_TAG, ATTEMPT_TAG)
    }
    requests = []
    for job_name, keys in sorted(by_job.items()):
        partition = _partition_tags(run) if job_name in partitioned_jobs else {}
        tags = {
            **user_tags,
            **NO_DAEMON_STEP_RETRY,
            SELF_HEALING_TAG: "reexecution",
            ROOT_TAG: failed.root_run_id,
            PARENT_TAG: run.run_id,
            ATTEMPT_TAG: str(failed.attempt + 1),
        }
        checks = None
        if run.asset_check_selection is not None:
            checks = [check for check in run.asset_check_selection if check.asset_key in keys]
        requests.append(
            RunRequest(
                run_key=f"self-healing:{run.run_id}:{job_name}",
                job_name=job_name,
                # executor config belongs to the failed run's job, not to the re-execution job
                run_config={k: v for k, v in run.run_config.items() if k != "execution"},
                tags={**tags, **partition},
                asset_selection=sorted(keys, key=str),
                asset_check_keys=checks,
                partition_key=partition.get("dagster/partition"),
            )
        )
    return tuple(requests)


def decide(
    failed: FailedRun,
    targets: ReexecutionTargets,
    *,
    reexecutions_so_far: int,
    max_reexecutions: int,
    superseded_by: str | None,
) -> Decision:
    """Re-execute only when every failed step is transient, within the bound, and not redundant."""
    if _delegated(failed.run):
        return Decision(
            "reexecuted",
            "re-executed by Dagster run retries (dagster/will_retry); not launched a second time",
        )
    blocking = [step for step in failed.steps if not step.diagnosis.transient]
    if blocking:
        first = blocking[0]
        where = first.step_key or "the run"
        return Decision(
            "none", f"not re-executed: {where} failed with an error diagnosed {first.diagnosis.kind}"
        )
    if reexecutions_so_far >= max_reexecutions:
        return Decision(
            "gave_up",
            f"still failing after {reexecutions_so_far} automatic re-execution(s) "
            f"(AFLUENTE_MAX_AUTO_REEXECUTIONS={max_reexecutions}): check the service, then re-execute",
        )
    if superseded_by is not None:
        return Decision("none", f"run {superseded_by}, created later, already materializes these assets")
    by_job, orphans = targets.plan(failed.pending_keys)
    if orphans or not by_job:
        missing = user_string(orphans) if orphans else "no asset to re-execute"
        return Decision("none", f"not re-executed: no re-execution job covers {missing}")
    requests = reexecution_requests(failed, by_job, targets.partitioned_jobs)
    selected = user_string(k for keys in by_job.values() for k in keys)
    return Decision(
        "reexecuted",
        f"re-executed from failure (attempt {failed.attempt + 1}, {selected})",
        requests,
    )


def _delegated(run: DagsterRun) -> bool:
    """Dagster's own run retries will re-execute this run (decided before the sensor sees it)."""
    return run.tags.get(WILL_RETRY_TAG) == "true"


def incidents_for(failed: FailedRun, decision: Decision, retry_run_id: str | None = None) -> list[Incident]:
    incidents = []
    for step in failed.steps:
        action = decision.action if step.diagnosis.transient or _delegated(failed.run) else "none"
        incidents.append(
            Incident(
                run_id=failed.run.run_id,
                job_name=failed.run.job_name,
                asset_keys=user_string(step.asset_keys),
                step_key=step.step_key,
                error_class=step.diagnosis.error_class,
                error_message=step.error_message,
                diagnosis=step.diagnosis.kind,
                explanation=f"{step.diagnosis.explanation}. {decision.reason}"[:MAX_MESSAGE_CHARS],
                action=action,
                attempt=failed.attempt,
                root_run_id=failed.root_run_id,
                retry_run_id=retry_run_id if action == "reexecuted" else None,
            )
        )
    return incidents


def _sensor_warehouse(warehouse: WarehouseResource) -> WarehouseResource:
    """Same warehouse, shorter DuckDB lock wait: a sensor tick must end well within its timeout."""
    return WarehouseResource(
        url=warehouse.url, lock_timeout_s=min(warehouse.lock_timeout_s, SENSOR_LOCK_WAIT_S)
    )


def handle_failed_run(
    context: RunFailureSensorContext, warehouse: WarehouseResource, targets: ReexecutionTargets
) -> list[RunRequest]:
    """Record the incidents of one failed run and return the re-execution requests (maybe none).

    The re-execution does not depend on the warehouse (often what is down): when the incidents
    cannot be written, the decision is kept in the run's tags and the upkeep sensor writes them.
    """
    run = context.dagster_run
    warehouse = _sensor_warehouse(warehouse)
    try:
        already = recorded_incidents(warehouse, run.run_id)
    except Exception as exc:
        context.log.warning(f"could not read ops.incidents: {exc}")
        already = []
    failed = read_failed_run(context.instance, run, context.get_step_failure_events(), context.failure_event)
    if already or run.tags.get(PENDING_TAG):
        # Evaluated again: same requests, same run keys, so the daemon launches nothing new.
        if _delegated(run):
            return []
        if run.tags.get(PENDING_TAG) == "reexecuted" or any(row["action"] == "reexecuted" for row in already):
            by_job, _ = targets.plan(failed.pending_keys)
            return list(reexecution_requests(failed, by_job, targets.partitioned_jobs))
        return []
    reexecutions = context.instance.get_runs_count(filters=RunsFilter(tags={ROOT_TAG: failed.root_run_id}))
    transient = all(step.diagnosis.transient for step in failed.steps)
    decision = decide(
        failed,
        targets,
        reexecutions_so_far=reexecutions,
        max_reexecutions=setting_int("AFLUENTE_MAX_AUTO_REEXECUTIONS"),
        superseded_by=superseding_run(context.instance, failed) if transient else None,
    )
    incidents = incidents_for(failed, decision)
    try:
        record_incidents(warehouse, incidents)
    except Exception as exc:
        context.log.error(f"ops.incidents unavailable, run {run.run_id} left for the upkeep sensor: {exc}")
        context.instance.add_run_tags(
            run.run_id, {PENDING_TAG: decision.action, REASON_TAG: decision.reason[:MAX_REASON_CHARS]}
        )
    for incident in incidents:
        context.log.info(
            f"incident {incident.incident_id}: {incident.step_key or 'run'} {incident.diagnosis} "
            f"({incident.error_class}) -> {incident.action}"
        )
    return list(decision.requests)


def record_pending_incidents(instance: DagsterInstance, warehouse: WarehouseResource, limit: int = 50) -> int:
    """Write the incidents the failure sensor could not write, from the decision kept in run tags."""
    written = 0
    records = instance.get_run_records(filters=RunsFilter(tags={PENDING_TAG: list(ACTIONS)}), limit=limit)
    for record in records:
        run = record.dagster_run
        events = instance.get_records_for_run(
            run.run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
        ).records
        dagster_events = [r.event_log_entry.dagster_event for r in events if r.event_log_entry.dagster_event]
        step_failures = [e for e in dagster_events if e.event_type == DagsterEventType.STEP_FAILURE]
        run_failure = next((e for e in dagster_events if e.event_type == DagsterEventType.RUN_FAILURE), None)
        failed = read_failed_run(instance, run, step_failures, run_failure)
        decision = Decision(run.tags[PENDING_TAG], run.tags.get(REASON_TAG, ""))
        child = instance.get_run_records(filters=RunsFilter(tags={PARENT_TAG: run.run_id}), limit=1)
        retry_run_id = child[0].dagster_run.run_id if child and decision.action == "reexecuted" else None
        written += record_incidents(warehouse, incidents_for(failed, decision, retry_run_id=retry_run_id))
        instance.add_run_tags(run.run_id, {PENDING_TAG: "recorded"})
    return written


def build_run_failure_sensor(
    *,
    targets: ReexecutionTargets,
    request_jobs: Sequence[Any],
    name: str = "run_failure_incidents_sensor",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """The run-failure sensor over every job of this code location (see module docstring)."""

    @run_failure_sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        request_jobs=list(request_jobs),
        description=(
            "Records every failed step in ops.incidents with a transient/permanent diagnosis and "
            "re-executes transient failures from failure, at most AFLUENTE_MAX_AUTO_REEXECUTIONS times."
        ),
    )
    def _run_failure_sensor(
        context: RunFailureSensorContext, warehouse: WarehouseResource
    ) -> list[RunRequest] | None:
        requests = handle_failed_run(context, warehouse, targets)
        # None lets the sensor go on with the next failed run in the same tick.
        return requests or None

    return _run_failure_sensor


def build_incident_upkeep_sensor(
    *,
    name: str = "incident_upkeep_sensor",
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """Keeps ``ops.incidents`` complete: deferred incidents, and ``retry_run_id`` of re-executions.

    A ``RunRequest`` has no run id until the daemon creates the run, so the link is made here from
    the ``afluente/reexecution_of`` tag of new runs (the cursor is their creation time); incidents
    the failure sensor could not write (warehouse down) wait in run tags until this sensor succeeds.
    """

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Writes incidents the run-failure sensor had to defer and links each re-executed incident "
            "in ops.incidents to the run that retried it."
        ),
    )
    def _incident_upkeep_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SkipReason:
        warehouse = _sensor_warehouse(warehouse)
        deferred = record_pending_incidents(context.instance, warehouse)
        since = dt.datetime.fromisoformat(context.cursor) if context.cursor else None
        records = context.instance.get_run_records(
            filters=RunsFilter(created_after=since), limit=200, ascending=True
        )
        linked = 0
        for record in records:
            # Dagster's run retries set dagster/parent_run_id; this sensor's re-executions the tag.
            tags = record.dagster_run.tags
            parent = tags.get("dagster/parent_run_id") or tags.get(PARENT_TAG)
            if parent:
                linked += link_retry_run(warehouse, parent, record.dagster_run.run_id)
            context.update_cursor(record.create_timestamp.isoformat())
        return SkipReason(
            f"{deferred} deferred incident(s) written; {len(records)} new run(s) seen, "
            f"{linked} incident(s) linked to their retry"
        )

    return _incident_upkeep_sensor


__all__ = [
    "INCIDENTS_SCHEMA",
    "INCIDENTS_TABLE",
    "INCIDENT_COLUMNS",
    "Incident",
    "ReexecutionTargets",
    "build_incident_upkeep_sensor",
    "build_run_failure_sensor",
    "ensure_incidents_table",
    "record_incidents",
    "record_pending_incidents",
    "recorded_incidents",
]
