"""Re-execution planning: what a failed run left undone, whether to re-execute it, and the requests.

Pure decisions over a failed run as read from its event log (the sensors that act on them are in
:mod:`sensors.run_failure`, the rows they write in :mod:`sensors.incidents_store`). A transient
failure is re-executed from failure, bounded by ``AFLUENTE_MAX_AUTO_REEXECUTIONS``, unless Dagster's
own run retries take it or a newer run already materializes what it left pending.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
)

from resources.error_diagnosis import MAX_MESSAGE_CHARS, Diagnosis, diagnose, error_summary
from resources.run_status import IN_FLIGHT_STATUSES
from sensors.incidents_store import Incident

ROOT_TAG = "afluente/reexecution_root"
PARENT_TAG = "afluente/reexecution_of"
ATTEMPT_TAG = "afluente/reexecution_attempt"
SELF_HEALING_TAG = "afluente/self_healing"
ACTIONS = ("reexecuted", "gave_up", "none")
WILL_RETRY_TAG = "dagster/will_retry"
PARTITION_TAGS = (
    "dagster/partition",
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
)
# Runs launched here: step failures come back to this sensor, not to Dagster's run retries.
NO_DAEMON_STEP_RETRY = {"dagster/retry_on_asset_or_op_failure": "false"}

# A run that supersedes a failed one: in flight or done. Not CANCELING: it will not materialize.
_SUPERSEDING_STATUSES = [
    *(status for status in IN_FLIGHT_STATUSES if status != DagsterRunStatus.CANCELING),
    DagsterRunStatus.SUCCESS,
]
_SUPERSEDING_LOOKAHEAD = 25
# A run that started, then failed with no failed step and no error: its worker process died
# (SIGKILL, out of memory, host or code server restart). Nothing in the run failed by itself, so
# what it did not materialize is re-executed like a transient failure (its ingest may have
# committed; the models after it must still be rebuilt).
# Set (to the run's own id) by run_worker_watchdog_sensor on a STARTING run whose launch was lost:
# its worker died or never came up, a crash like the above though the run never started.
WORKER_LOST_TAG = "afluente/worker_lost"
WORKER_CRASH = Diagnosis(
    "transient",
    "RunWorkerCrash",
    "the run worker process died mid-run (killed, out of memory, host or code server restart)",
)


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
        crashed = started or run.tags.get(WORKER_LOST_TAG) == run.run_id
        diagnosis = WORKER_CRASH if error is None and crashed else diagnose(error)
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
    if delegated(failed.run):
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


def delegated(run: DagsterRun) -> bool:
    """Dagster's own run retries will re-execute this run (decided before the sensor sees it)."""
    return run.tags.get(WILL_RETRY_TAG) == "true"


def incidents_for(failed: FailedRun, decision: Decision, retry_run_id: str | None = None) -> list[Incident]:
    incidents = []
    for step in failed.steps:
        action = decision.action if step.diagnosis.transient or delegated(failed.run) else "none"
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


__all__ = [
    "ACTIONS",
    "ATTEMPT_TAG",
    "PARENT_TAG",
    "ROOT_TAG",
    "SELF_HEALING_TAG",
    "WORKER_CRASH",
    "WORKER_LOST_TAG",
    "Decision",
    "FailedRun",
    "FailedStep",
    "ReexecutionTargets",
    "decide",
    "incidents_for",
    "read_failed_run",
    "reexecution_requests",
    "superseding_run",
]
