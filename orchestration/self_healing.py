"""Self-healing: the run-failure sensor, its re-execution jobs, incident upkeep and the run-worker watchdog.

Built from the assembled code location (``build_self_healing_defs(defs)`` in
``orchestration/definitions.py``) so every asset, whatever its domain, can be re-executed: one
asset job per partitions definition (an asset job cannot mix them), each run only ever launched
with an asset selection by ``sensors/run_failure.py``.
"""

import hashlib
from collections.abc import Iterable

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    Definitions,
    DynamicPartitionsDefinition,
    PartitionsDefinition,
    define_asset_job,
)

from sensors.reexecution import ReexecutionTargets
from sensors.run_failure import build_incident_upkeep_sensor, build_run_failure_sensor
from sensors.run_worker_watchdog import build_run_worker_watchdog_sensor

REEXECUTION_JOB_PREFIX = "self_healing_reexecution"


def reexecution_job_name(partitions_def: PartitionsDefinition | None) -> str:
    """Stable job name per partitions definition (dynamic ones by name, others by a digest)."""
    if partitions_def is None:
        return REEXECUTION_JOB_PREFIX
    if isinstance(partitions_def, DynamicPartitionsDefinition) and partitions_def.name:
        return f"{REEXECUTION_JOB_PREFIX}__{partitions_def.name}"
    return f"{REEXECUTION_JOB_PREFIX}__{hashlib.sha256(str(partitions_def).encode()).hexdigest()[:10]}"


def reexecution_targets(assets: Iterable[object]) -> tuple[ReexecutionTargets, dict[str, set[AssetKey]]]:
    """Which job re-executes each executable asset, and the keys of each job."""
    job_by_key: dict[AssetKey, str] = {}
    inseparable: dict[AssetKey, frozenset[AssetKey]] = {}
    keys_by_job: dict[str, set[AssetKey]] = {}
    partitioned: set[str] = set()
    for item in assets:
        if not isinstance(item, AssetsDefinition) or not item.is_executable:
            continue
        job = reexecution_job_name(item.partitions_def)
        if item.partitions_def is not None:
            partitioned.add(job)
        keys = frozenset(item.keys)
        keys_by_job.setdefault(job, set()).update(keys)
        for key in keys:
            job_by_key[key] = job
            if not item.can_subset and len(keys) > 1:
                inseparable[key] = keys
    return ReexecutionTargets(job_by_key, inseparable, frozenset(partitioned)), keys_by_job


def build_self_healing_defs(defs: Definitions) -> Definitions:
    """The partial ``Definitions`` of self-healing for the assets of ``defs``."""
    targets, keys_by_job = reexecution_targets(defs.assets or [])
    jobs = [
        define_asset_job(
            name,
            selection=AssetSelection.assets(*sorted(keys, key=str)),
            description=(
                "Re-executes, from failure, the assets of a run that failed on a transient error "
                "(launched by run_failure_incidents_sensor with an asset selection)."
            ),
            tags={"afluente/self_healing": "reexecution"},
        )
        for name, keys in sorted(keys_by_job.items())
    ]
    return Definitions(
        jobs=jobs,
        sensors=[
            build_run_failure_sensor(targets=targets, request_jobs=jobs),
            build_incident_upkeep_sensor(),
            build_run_worker_watchdog_sensor(),
        ],
    )
