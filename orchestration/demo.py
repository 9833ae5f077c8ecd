"""`make demo` step: the real daemon ingests what sits in the landing zone and builds every mart it feeds.

The demo's runs are the sensors' runs, as in a deployment: ``dagster-daemon run`` (the same workspace and
the same instance in DAGSTER_HOME as the UI that starts next) ticks the file-drop sensors, which add
one partition and request one run per landed file; the automation sensor then builds staging and marts,
and the freshness sensor records them for ``/health``. This module only starts the daemon, watches the
instance and the landing folders, and stops the daemon once every landed file is ingested, every mart
it feeds is built after its inputs and recorded fresh, and no run is left. Nothing is materialized by
hand, so the UI shows runs of the sensors' jobs with their tags (``dagster/sensor_name``, run keys).

Only the tick intervals are shortened while the demo waits (``DEMO_TICKS``); the UI's daemon runs on
the configured ones. Assets needing a broker, MongoDB or a search engine are left to their sensors,
which skip with a reason; ``make demo`` sets ``SEARCH_ENABLED=false`` so nothing waits for an index.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from dagster import AssetKey, AssetSpec, DagsterInstance, DagsterRunStatus, RunsFilter

from resources.landing_zone import LandingZoneResource
from resources.run_status import IN_FLIGHT_STATUSES
from resources.settings import LandingSettings, SearchSettings, WarehouseSettings
from resources.warehouse import WarehouseResource

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "workspace.yaml"
# Tick intervals of the daemon while the demo waits for it (seconds).
DEMO_TICKS = {"AFLUENTE_SENSOR_INTERVAL_SECONDS": "2", "FRESHNESS_SENSOR_INTERVAL_SECONDS": "3"}
UNFINISHED = list(IN_FLIGHT_STATUSES)
FAILED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
SENSOR_TAG = "dagster/sensor_name"
# Landed files and no run after this long: the daemon cannot load the code location or its sensors fail.
FIRST_RUN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class DemoPlan:
    """What the daemon is expected to do with landed files."""

    feeds: tuple[str, ...]  # landing folders (domains) fed by files
    roots: frozenset[AssetKey]  # raw assets the file runs materialize
    targets: Mapping[AssetKey, frozenset[AssetKey]]  # automated assets built from them → their roots


def plan_demo(specs: Sequence[AssetSpec]) -> DemoPlan:
    """Landing feeds, the raw assets they fill and the automated assets downstream of those.

    A raw table filled by files may belong to another asset (landed commerce files go to the Kafka-owned
    ``raw/commerce_events``, whose materialization the file run records): every asset of a filled table
    is a root.
    """
    by_key = {spec.key: spec for spec in specs}
    landing = {spec.key: spec for spec in specs if spec.key.path[0] == "source" and "file" in spec.kinds}
    fed = [spec for spec in specs if any(dep.asset_key in landing for dep in spec.deps)]
    tables = {spec.metadata.get("dagster/table_name") for spec in fed} - {None}
    roots = {spec.key for spec in fed} | {
        spec.key for spec in specs if spec.metadata.get("dagster/table_name") in tables
    }
    children: dict[AssetKey, set[AssetKey]] = {}
    for spec in specs:
        for dep in spec.deps:
            children.setdefault(dep.asset_key, set()).add(spec.key)
    targets: dict[AssetKey, set[AssetKey]] = {}
    for root in roots:
        stack, seen = [root], {root}
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        for key in seen - roots:
            spec = by_key[key]
            if spec.automation_condition is not None and spec.partitions_def is None:
                targets.setdefault(key, set()).add(root)
    feeds = tuple(sorted(spec.tags.get("domain", spec.key.path[-1]) for spec in landing.values()))
    return DemoPlan(feeds, frozenset(roots), {key: frozenset(r) for key, r in targets.items()})


def pending_files(landing: LandingZoneResource, feeds: Iterable[str]) -> list[str]:
    """Files still in a landing folder (not yet archived, quarantined or set aside by their run)."""
    pending = []
    for domain in feeds:
        if not landing.domain_dir(domain).is_dir():
            continue
        scan = landing.scan(domain, ("*",), settle_seconds=0)
        paths = [entry[0] for entry in scan.ready] + [path for path, _ in (*scan.waiting, *scan.refused)]
        pending += [f"{domain}/{path.name}" for path in paths]
    return pending


def _materialized_at(instance: DagsterInstance, key: AssetKey) -> float | None:
    event = instance.get_latest_materialization_event(key)
    return event.timestamp if event is not None else None


def unbuilt_targets(instance: DagsterInstance, plan: DemoPlan) -> list[AssetKey]:
    """Targets not built since their latest landed input (inputs never materialized are ignored)."""
    latest = {root: _materialized_at(instance, root) for root in plan.roots}
    late = []
    for key, roots in plan.targets.items():
        inputs = [at for at in (latest[root] for root in roots) if at is not None]
        if not inputs:
            continue
        built = _materialized_at(instance, key)
        if built is None or built < max(inputs):
            late.append(key)
    return sorted(late, key=lambda k: k.to_user_string())


def unrecorded_aggregates(
    instance: DagsterInstance, warehouse: WarehouseResource, keys: Iterable[AssetKey]
) -> list[str]:
    """Aggregates whose latest build ``ops.freshness`` (what ``/health`` reads) does not show yet."""
    expected: dict[str, dt.datetime] = {}
    for key in keys:
        at = _materialized_at(instance, key)
        if at is not None and key.path[0] == "mart":
            expected[key.to_user_string()] = dt.datetime.fromtimestamp(at, dt.UTC).replace(tzinfo=None)
    if not expected:
        return []
    try:
        with warehouse.connect() as conn:
            query = sa.text("SELECT asset_key, last_updated_at FROM ops.freshness")
            rows: dict[str, dt.datetime | None] = {key: at for key, at in conn.execute(query)}
    except sa.exc.DBAPIError:  # not written yet, or the file is busy: asked again next poll
        return sorted(expected)
    return sorted(key for key, at in expected.items() if (seen := rows.get(key)) is None or seen < at)


def start_daemon(log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """``dagster-daemon run`` in its own session, so it stops with its code server and run workers.

    ``env`` defaults to this process's environment with the demo's short ticks (``DEMO_TICKS``).
    """
    env = {**os.environ, **DEMO_TICKS} if env is None else dict(env)
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_daemon(proc: subprocess.Popen) -> None:
    """SIGTERM the daemon's process group, SIGKILL what is left after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_for_daemon(
    instance: DagsterInstance,
    plan: DemoPlan,
    landing: LandingZoneResource,
    warehouse: WarehouseResource,
    proc: subprocess.Popen,
    timeout_s: float,
) -> str | None:
    """Poll until the daemon is done with the landed data; None when done, else what is still missing."""
    since = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    deadline = started + timeout_s
    waiting = "the daemon to start"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"the daemon exited with code {proc.returncode}"
        files = pending_files(landing, plan.feeds)
        running = instance.get_runs_count(RunsFilter(statuses=UNFINISHED))
        failed = instance.get_runs(RunsFilter(statuses=FAILED, created_after=since), limit=5)
        if failed:  # the demo is not green whatever happens next: say which runs at once
            return "failed run(s): " + "; ".join(f"{run.job_name} {run.run_id[:8]}" for run in failed)
        if files and not instance.get_runs_count() and time.monotonic() - started > FIRST_RUN_TIMEOUT_S:
            return f"no run launched in {FIRST_RUN_TIMEOUT_S:.0f}s although files landed (see the daemon log)"
        late = [] if files or running else unbuilt_targets(instance, plan)
        unrecorded = (
            [] if files or running or late else unrecorded_aggregates(instance, warehouse, plan.targets)
        )
        if not (files or running or late or unrecorded):
            return None
        waiting = (
            f"{len(files)} landed file(s)"
            if files
            else f"{running} run(s)"
            if running
            else f"{len(late)} asset(s) to be built: {', '.join(k.to_user_string() for k in late[:5])}"
            if late
            else f"freshness records of {', '.join(unrecorded[:5])}"
        )
        time.sleep(1.0)
    return f"timed out after {timeout_s:.0f}s waiting for {waiting}"


def run_summary(instance: DagsterInstance, since: float) -> tuple[list[str], list[str]]:
    """One line per (job, sensor, status) of the runs created since ``since``; the failed run ids."""
    records = instance.get_run_records(RunsFilter(created_after=dt.datetime.fromtimestamp(since, dt.UTC)))
    counts = Counter(
        (r.dagster_run.job_name, r.dagster_run.tags.get(SENSOR_TAG, "-"), r.dagster_run.status.value)
        for r in records
    )
    lines = [
        f"  {n:3d} × {job} (sensor {sensor}): {status}" for (job, sensor, status), n in sorted(counts.items())
    ]
    failed = [r.dagster_run.run_id for r in records if r.dagster_run.status != DagsterRunStatus.SUCCESS]
    return lines, failed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the daemon")
    args = parser.parse_args(argv)

    from orchestration.definitions import defs  # the code location the daemon loads too

    plan = plan_demo(list(defs.resolve_all_asset_specs()))
    landing = LandingZoneResource(root=LandingSettings.current().root)
    warehouse = WarehouseResource(url=WarehouseSettings.current().url)
    if SearchSettings.current().enabled:
        print("note: SEARCH_ENABLED=true: the insight indices will be built and need SEARCH_URL to answer")
    instance = DagsterInstance.get()
    instance.get_runs_count()  # the instance's storage exists before the daemon opens it
    files = pending_files(landing, plan.feeds)
    feeds = ", ".join(plan.feeds)
    print(f"{len(files)} landed file(s) in {feeds}; starting the daemon (its sensors launch the runs)")
    log = Path(instance.root_directory) / "demo-daemon.log"
    started, clock = time.time(), time.perf_counter()
    proc = start_daemon(log)
    # `kill <demo>` stops the daemon too (Ctrl-C already raises KeyboardInterrupt).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("demo stopped (SIGTERM)"))
    try:
        problem = wait_for_daemon(instance, plan, landing, warehouse, proc, args.timeout)
    finally:
        stop_daemon(proc)
    lines, failed = run_summary(instance, started)
    print("\n".join(lines) or "  no run: nothing landed")
    print(f"demo data ready in {time.perf_counter() - clock:.1f}s (daemon log: {log})")
    if problem or failed:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise SystemExit(
            f"demo not green: {problem or f'{len(failed)} run(s) did not succeed: {failed[:5]}'}\n{tail}"
        )


if __name__ == "__main__":
    main()
