"""Self-healing wiring: retry policies on every network asset, re-execution jobs, the sensor's decision."""

from dagster import AssetKey, AssetsDefinition, Backoff, DagsterRun, Jitter

from orchestration.definitions import defs
from orchestration.self_healing import REEXECUTION_JOB_PREFIX, reexecution_targets
from resources.error_diagnosis import Diagnosis
from sensors.incidents_store import incident_id_for
from sensors.reexecution import (
    ATTEMPT_TAG,
    PARENT_TAG,
    ROOT_TAG,
    FailedRun,
    FailedStep,
    ReexecutionTargets,
    decide,
    incidents_for,
)

NETWORK_RESOURCES = {"warehouse", "kafka", "mongo", "search", "io_manager"}


def _executable_assets() -> list[AssetsDefinition]:
    return [a for a in defs.assets or [] if isinstance(a, AssetsDefinition) and a.is_executable]


def test_every_asset_touching_the_network_has_a_retry_policy_with_backoff_and_jitter() -> None:
    checked = 0
    for assets_def in _executable_assets():
        if not assets_def.required_resource_keys & NETWORK_RESOURCES:
            continue
        checked += 1
        policy = assets_def.op.retry_policy
        name = assets_def.node_def.name
        assert policy is not None, f"{name} has no retry policy"
        assert policy.max_retries >= 3 and (policy.delay or 0) > 0, name
        assert policy.backoff == Backoff.EXPONENTIAL, name
        assert policy.jitter in (Jitter.PLUS_MINUS, Jitter.FULL), name
    assert checked >= 20


def test_every_asset_has_a_reexecution_job_and_the_sensor_targets_them() -> None:
    targets, keys_by_job = reexecution_targets(defs.assets or [])
    executable = {key for a in _executable_assets() for key in a.keys}
    assert set(targets.job_by_key) == executable
    for name, keys in keys_by_job.items():
        assert name.startswith(REEXECUTION_JOB_PREFIX)
        job = defs.resolve_job_def(name)
        assert {
            key for key in job.asset_layer.executable_asset_keys
        } >= keys  # resolvable, one partitions def
    assert targets.job_by_key[AssetKey(["raw", "exportacao"])] == f"{REEXECUTION_JOB_PREFIX}__export_files"
    assert targets.job_by_key[AssetKey(["mart", "usage_daily"])] == REEXECUTION_JOB_PREFIX
    # a non-subsettable multi-asset is re-executed whole
    by_job, orphans = targets.plan([AssetKey(["raw", "commerce_events_dead_letter"])])
    assert not orphans
    assert by_job == {
        REEXECUTION_JOB_PREFIX: {
            AssetKey(["raw", "commerce_events"]),
            AssetKey(["raw", "commerce_events_dead_letter"]),
        }
    }
    sensor = next(s for s in defs.sensors if s.name == "run_failure_incidents_sensor")
    assert {t.job_name for t in sensor.targets} == set(keys_by_job)
    assert str(sensor.default_status).endswith("RUNNING")


# ------------------------------------------------------------------------------------------------
# The decision, on hand-built runs

A, B, C = AssetKey(["raw", "a"]), AssetKey(["stg", "b"]), AssetKey(["raw", "p"])
TARGETS = ReexecutionTargets(
    job_by_key={A: "reexec", B: "reexec", C: "reexec__files"}, partitioned_jobs=frozenset({"reexec__files"})
)
TRANSIENT = Diagnosis("transient", "psycopg.OperationalError", "the connection was refused")
PERMANENT = Diagnosis("permanent", "psycopg.errors.UndefinedTable", "the SQL is invalid")


def _failed(
    tags: dict[str, str] | None = None, diagnoses: tuple[Diagnosis, ...] = (TRANSIENT,), pending=(A, B)
) -> FailedRun:
    run = DagsterRun(
        job_name="__ASSET_JOB",
        run_id="run-1",
        run_config={"ops": {"raw__a": {"config": {"x": 1}}}},
        tags={"afluente/domain": "usage", "dagster/run_key": "k", **(tags or {})},
    )
    steps = tuple(
        FailedStep(f"step_{i}", (A,), diagnosis, f"error {i}") for i, diagnosis in enumerate(diagnoses)
    )
    return FailedRun(run=run, steps=steps, pending_keys=frozenset(pending))


def _decide(failed: FailedRun, so_far: int = 0, superseded_by: str | None = None):  # noqa: ANN202
    return decide(
        failed, TARGETS, reexecutions_so_far=so_far, max_reexecutions=3, superseded_by=superseded_by
    )


def test_transient_failure_is_reexecuted_from_failure_with_lineage_tags() -> None:
    decision = _decide(_failed())
    assert decision.action == "reexecuted"
    (request,) = decision.requests
    assert request.job_name == "reexec" and set(request.asset_selection or []) == {A, B}
    assert request.run_config == {"ops": {"raw__a": {"config": {"x": 1}}}}
    assert request.run_key == "self-healing:run-1:reexec"
    assert request.tags[ROOT_TAG] == "run-1" and request.tags[PARENT_TAG] == "run-1"
    assert request.tags[ATTEMPT_TAG] == "2" and request.tags["afluente/domain"] == "usage"
    assert request.tags["dagster/retry_on_asset_or_op_failure"] == "false"
    assert "dagster/run_key" not in request.tags


def test_reexecution_of_a_reexecution_keeps_the_root_and_counts_attempts() -> None:
    failed = _failed(tags={ROOT_TAG: "run-0", ATTEMPT_TAG: "2", PARENT_TAG: "run-0"})
    (request,) = _decide(failed, so_far=1).requests
    assert request.tags[ROOT_TAG] == "run-0" and request.tags[PARENT_TAG] == "run-1"
    assert request.tags[ATTEMPT_TAG] == "3"
    incidents = incidents_for(failed, _decide(failed, so_far=1))
    assert {(i.attempt, i.root_run_id, i.action) for i in incidents} == {(2, "run-0", "reexecuted")}


def test_partition_tags_follow_only_the_partitioned_job() -> None:
    failed = _failed(tags={"dagster/partition": "file-1"}, pending=(A, C))
    requests = {r.job_name: r for r in _decide(failed).requests}
    assert requests["reexec__files"].partition_key == "file-1"
    assert requests["reexec__files"].tags["dagster/partition"] == "file-1"
    assert "dagster/partition" not in requests["reexec"].tags


def test_bound_permanent_will_retry_superseded_and_orphans_are_not_reexecuted() -> None:
    gave_up = _decide(_failed(), so_far=3)
    assert (
        gave_up.action == "gave_up"
        and not gave_up.requests
        and "AFLUENTE_MAX_AUTO_REEXECUTIONS" in gave_up.reason
    )
    mixed = _failed(diagnoses=(TRANSIENT, PERMANENT))
    decision = _decide(mixed)
    assert decision.action == "none" and not decision.requests
    assert [i.action for i in incidents_for(mixed, decision)] == ["none", "none"]
    # Dagster's run retries will re-execute it: recorded as re-executed (by Dagster), nothing launched
    delegated = _failed(tags={"dagster/will_retry": "true"}, diagnoses=(TRANSIENT, PERMANENT))
    decision = _decide(delegated)
    assert decision.action == "reexecuted" and not decision.requests and "run retries" in decision.reason
    assert [i.action for i in incidents_for(delegated, decision)] == ["reexecuted", "reexecuted"]
    superseded = _decide(_failed(), superseded_by="run-9")
    assert superseded.action == "none" and "run-9" in superseded.reason
    orphan = _decide(_failed(pending=(A, AssetKey("elsewhere"))))
    assert orphan.action == "none" and "elsewhere" in orphan.reason


def test_incident_ids_are_stable_per_run_and_step() -> None:
    assert incident_id_for("r", "s") == incident_id_for("r", "s")
    assert incident_id_for("r", "s") != incident_id_for("r", "t")
    assert incident_id_for("r", None).startswith("r:")
