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
import time
from collections.abc import Sequence
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
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

from resources.settings import SelfHealingSettings
from resources.warehouse import WarehouseResource
from sensors.incidents_store import link_retry_run, record_incidents, recorded_incidents
from sensors.reexecution import (
    ACTIONS,
    PARENT_TAG,
    ROOT_TAG,
    WILL_RETRY_TAG,
    Decision,
    ReexecutionTargets,
    decide,
    delegated,
    incidents_for,
    read_failed_run,
    reexecution_requests,
    superseding_run,
)

# Set on a failed run whose incidents could not be written: the decision, for the upkeep sensor.
PENDING_TAG = "afluente/incident_pending"
REASON_TAG = "afluente/incident_reason"
MAX_REASON_CHARS = 500
SENSOR_LOCK_WAIT_S = 20.0


def _sensor_warehouse(warehouse: WarehouseResource) -> WarehouseResource:
    """Same warehouse, shorter DuckDB lock wait: a sensor tick must end well within its timeout."""
    return WarehouseResource(
        url=warehouse.url, lock_timeout_s=min(warehouse.lock_timeout_s, SENSOR_LOCK_WAIT_S)
    )


# Dagster tags a failed run dagster/will_retry right after storing its failure: how long to wait for it.
RETRY_VERDICT_WAIT_S = 2.0


def with_retry_verdict(
    instance: DagsterInstance, run: DagsterRun, wait_s: float = RETRY_VERDICT_WAIT_S
) -> DagsterRun:
    """The run as stored now, once Dagster has said whether its own run retries take it.

    With ``run_retries`` on, the instance adds ``dagster/will_retry`` just after the failure event this
    sensor reacts to; reading the run before that would re-execute a run Dagster retries too. The wait
    is bounded and only happens in that short window.
    """
    deadline = time.monotonic() + wait_s
    while True:
        fresh = instance.get_run_by_id(run.run_id) or run
        if not instance.run_retries_enabled or WILL_RETRY_TAG in fresh.tags or time.monotonic() > deadline:
            return fresh
        time.sleep(0.05)


def handle_failed_run(
    context: RunFailureSensorContext, warehouse: WarehouseResource, targets: ReexecutionTargets
) -> list[RunRequest]:
    """Record the incidents of one failed run and return the re-execution requests (maybe none).

    The re-execution does not depend on the warehouse (often what is down): when the incidents
    cannot be written, the decision is kept in the run's tags and the upkeep sensor writes them.
    """
    run = with_retry_verdict(context.instance, context.dagster_run)
    warehouse = _sensor_warehouse(warehouse)
    try:
        already = recorded_incidents(warehouse, run.run_id)
    except Exception as exc:
        context.log.warning(f"could not read ops.incidents: {exc}")
        already = []
    failed = read_failed_run(context.instance, run, context.get_step_failure_events(), context.failure_event)
    if already or run.tags.get(PENDING_TAG):
        # Evaluated again: same requests, same run keys, so the daemon launches nothing new.
        if delegated(run):
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
        max_reexecutions=SelfHealingSettings.current().max_auto_reexecutions,
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
    "PENDING_TAG",
    "REASON_TAG",
    "build_incident_upkeep_sensor",
    "build_run_failure_sensor",
    "handle_failed_run",
    "record_pending_incidents",
]
