"""Bring the dev services up/down as one stack: dependency order, idempotence, readiness, timings."""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from services import proc
from services.base import PORT_ENV, ConnectionInfo, Echo, Service, Step, services_home
from services.ferretdb_server import FerretDB
from services.kafka_server import Kafka
from services.opensearch_server import OpenSearch
from services.postgres_server import Postgres

SERVICE_CLASSES: dict[str, type[Service]] = {
    "postgres": Postgres,
    "ferretdb": FerretDB,
    "kafka": Kafka,
    "opensearch": OpenSearch,
}
SERVICE_NAMES: tuple[str, ...] = tuple(SERVICE_CLASSES)  # also the start order
ALIASES = {
    "pg": "postgres",
    "postgresql": "postgres",
    "mongo": "ferretdb",
    "mongodb": "ferretdb",
    "search": "opensearch",
    "elasticsearch": "opensearch",
}


def get(name: str) -> Service:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SERVICE_CLASSES:
        raise proc.SetupError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
    return SERVICE_CLASSES[key]()


def resolve(names: Iterable[str] | None, with_deps: bool = True) -> list[Service]:
    """Services for ``names`` (default: all) plus their dependencies, in start order."""
    wanted = {get(n).name for n in names} if names else set(SERVICE_NAMES)
    if with_deps:
        stack = list(wanted)
        while stack:
            for dep in SERVICE_CLASSES[stack.pop()].depends_on:
                if dep not in wanted:
                    wanted.add(dep)
                    stack.append(dep)
    return [SERVICE_CLASSES[n]() for n in SERVICE_NAMES if n in wanted]


def with_dependents(names: Iterable[str] | None) -> list[Service]:
    """Services for ``names`` plus everything depending on them, in start order."""
    wanted = {get(n).name for n in names} if names else set(SERVICE_NAMES)
    changed = True
    while changed:
        changed = False
        for name, cls in SERVICE_CLASSES.items():
            if name not in wanted and wanted.intersection(cls.depends_on):
                wanted.add(name)
                changed = True
    return [SERVICE_CLASSES[n]() for n in SERVICE_NAMES if n in wanted]


def _restore_path() -> Path:
    return services_home() / "run" / "restore.json"


def _read_restore() -> dict[str, list[str]]:
    """Dependent -> the services whose ``down`` stopped it (it was running; nobody asked to stop it)."""
    try:
        data = json.loads(_restore_path().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): [str(v) for v in vs] for k, vs in data.items()} if isinstance(data, dict) else {}


def _write_restore(record: dict[str, list[str]]) -> None:
    path = _restore_path()
    if not record:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, sort_keys=True))
    tmp.replace(path)


def stopped_dependents(names: Iterable[str] | None) -> list[str]:
    """Dependents that ``down`` of ``names`` stopped while they ran, which ``up`` of ``names`` restarts."""
    if not names:
        return []
    wanted = {s.name for s in resolve(names)}
    return sorted(dep for dep, causes in _read_restore().items() if wanted.intersection(causes))


def _timeout(svc: Service) -> float:
    override = os.environ.get("AFLUENTE_SERVICES_START_TIMEOUT")
    return float(override) if override else svc.start_timeout


def _lock_path():
    return services_home() / "run" / ".lock"


def state(svc: Service) -> tuple[str, proc.PidInfo | None]:
    """("running" | "starting" | "stopped" | "foreign", pid info)."""
    info = proc.live_pid(svc.pid_path)
    listening = proc.port_open(svc.port)
    if info is not None:
        return ("running" if listening else "starting"), info
    return ("foreign" if listening else "stopped"), None


def _fail(svc: Service, message: str) -> proc.SetupError:
    return proc.SetupError(
        f"{svc.name}: {message}\n----- last 40 lines of {svc.log_path} -----\n{proc.tail(svc.log_path, 40)}"
    )


def _answers(svc: Service) -> bool:
    """Readiness: the port accepts connections and the service's own probe passes."""
    return proc.port_open(svc.port) and svc.probe()


def _wait_ready(svc: Service, step: Step, started: float | None, pid: proc.PidInfo | None) -> None:
    alive = (lambda: proc.pid_alive(pid.pid, pid.start_ticks)) if pid else None
    ok = proc.wait_until(functools.partial(_answers, svc), _timeout(svc), alive=alive)
    if not ok:
        if pid is not None and not proc.pid_alive(pid.pid, pid.start_ticks):
            raise _fail(svc, "the server process exited during start-up")
        raise _fail(svc, f"not ready within {_timeout(svc):.0f}s")
    if started is not None:
        step.record("ready", time.monotonic() - started, svc.info().url)
    svc.after_ready(step)


def _install(svc: Service, step: Step) -> None:
    with step("install"):
        svc.install(step)


def _start(svc: Service, step: Step) -> tuple[float, proc.PidInfo]:
    with step("prepare"):
        svc.prepare(step)
    cmd, env, cwd = svc.command()
    t0 = time.monotonic()
    with step("spawn"):
        pid = proc.spawn_detached(cmd, svc.log_path, svc.pid_path, cwd=cwd, env=env, user=svc.run_as)
    if step.echo:
        step.echo(f"[{svc.name}] pid {pid.pid}, log {svc.log_path}")
    return t0, pid


def ensure_up(
    names: Iterable[str] | None = None,
    *,
    echo: Echo | None = None,
    skip_up: bool | None = None,
) -> dict[str, ConnectionInfo]:
    """Install (once), start (if not running) and wait for the services; return their connection info.

    Idempotent: a running service (pid alive AND port answering) is left alone; a dead pid / stale pid
    file is restarted. The dependents that ``down`` of one of these services stopped while they ran
    (``down postgres`` stops FerretDB) are started again too, so ``up`` undoes ``down``. With
    ``skip_up`` (default: ``$AFLUENTE_SERVICES_SKIP_UP=1``) nothing is started, only readiness is
    verified, for CI where ``make`` started the stack.
    """
    if skip_up is None:
        skip_up = os.environ.get("AFLUENTE_SERVICES_SKIP_UP", "") in ("1", "true", "yes")
    if skip_up:
        return check_ready([s.name for s in resolve(names)], echo=echo)

    t_all = time.monotonic()
    names = list(names) if names else None
    with proc.file_lock(_lock_path()):
        restored = stopped_dependents(names)
        if restored and echo:
            echo(f"up: also starting {', '.join(restored)} (stopped by an earlier `down`)")
        services = resolve([*names, *restored] if names else None)
        steps = {svc.name: Step(svc.name, echo) for svc in services}
        to_start: list[Service] = []
        for svc in services:
            step = steps[svc.name]
            st, info = state(svc)
            if st == "running":
                assert info is not None  # state() reports "running" only with the live pid's info
                if echo:
                    echo(f"[{svc.name}] already running (pid {info.pid}, port {svc.port})")
                continue
            if st == "foreign":
                raise _fail(
                    svc,
                    f"port {svc.port} is taken by a process not started by `services` "
                    f"(stop it, or choose another port with {_port_env(svc)})",
                )
            if st == "starting" and info is not None:
                # Started earlier but not listening yet (or hung): give it its timeout, else restart it.
                if echo:
                    echo(f"[{svc.name}] pid {info.pid} alive but port {svc.port} closed; waiting")
                try:
                    _wait_ready(svc, step, time.monotonic(), info)
                    continue
                except proc.SetupError:
                    proc.stop_process(svc.pid_path, svc.stop_signal, svc.stop_timeout)
            to_start.append(svc)
        # Install everything first (downloads/builds), so "ready" timings measure only the server start.
        for svc in to_start:
            _install(svc, steps[svc.name])
        pending: list[tuple[Service, float, proc.PidInfo]] = []
        for svc in services:
            if svc in to_start:
                started, pid = _start(svc, steps[svc.name])
                if any(svc.name in other.depends_on for other in to_start):
                    _wait_or_stop(svc, steps[svc.name], started, pid)  # dependents need it ready first
                else:
                    pending.append((svc, started, pid))
            else:
                svc.after_ready(steps[svc.name])  # cheap, idempotent (e.g. PostgreSQL databases exist)
        for svc, started, pid in pending:
            _wait_or_stop(svc, steps[svc.name], started, pid)
        record = _read_restore()
        _write_restore({dep: causes for dep, causes in record.items() if dep not in steps})
    if echo:
        echo(f"up: {time.monotonic() - t_all:.2f}s total")
    return {svc.name: _info_with_pid(svc) for svc in services}


def _wait_or_stop(svc: Service, step: Step, started: float | None, pid: proc.PidInfo | None) -> None:
    try:
        _wait_ready(svc, step, started, pid)
    except proc.SetupError:
        # Don't leave a half-started server behind: the next `up` starts it afresh.
        proc.stop_process(svc.pid_path, svc.stop_signal, svc.stop_timeout)
        raise


def _port_env(svc: Service) -> str:
    return PORT_ENV[svc.name][0]


def _info_with_pid(svc: Service) -> ConnectionInfo:
    info = svc.info()
    live = proc.live_pid(svc.pid_path)
    info.pid = live.pid if live else None
    return info


def check_ready(names: Iterable[str] | None = None, *, echo: Echo | None = None) -> dict[str, ConnectionInfo]:
    """Verify (without starting anything) that the services answer their readiness probes."""
    services = resolve(names)
    for svc in services:
        t0 = time.monotonic()
        ok = proc.wait_until(functools.partial(_answers, svc), _timeout(svc))
        if not ok:
            raise _fail(
                svc,
                f"not ready on port {svc.port} within {_timeout(svc):.0f}s "
                "(AFLUENTE_SERVICES_SKIP_UP is set, so nothing was started)",
            )
        svc.after_ready(Step(svc.name, None))
        if echo:
            echo(f"[{svc.name}] ready: {time.monotonic() - t0:.2f}s")
    return {svc.name: _info_with_pid(svc) for svc in services}


def down(names: Iterable[str] | None = None, *, echo: Echo | None = None) -> dict[str, str]:
    """Stop services (and whatever depends on them) in reverse start order: signal, then SIGKILL.

    A running dependent stopped only because its dependency went down is remembered in
    ``run/restore.json``; ``up`` of that dependency starts it again. A service named here is forgotten.
    """
    results: dict[str, str] = {}
    requested = {get(n).name for n in names} if names else set(SERVICE_NAMES)
    with proc.file_lock(_lock_path()):
        record = {dep: causes for dep, causes in _read_restore().items() if dep not in requested}
        for svc in reversed(with_dependents(names)):
            t0 = time.monotonic()
            results[svc.name] = proc.stop_process(svc.pid_path, svc.stop_signal, svc.stop_timeout)
            if svc.name not in requested and results[svc.name] != "not running":
                record[svc.name] = sorted(set(record.get(svc.name, [])) | requested)
            if echo:
                echo(f"[{svc.name}] {results[svc.name]} ({time.monotonic() - t0:.2f}s)")
        _write_restore(record)
    return results


def reset(names: Iterable[str] | None = None, *, echo: Echo | None = None) -> None:
    """Stop the services and wipe their data (downloaded/built artefacts are kept)."""
    targets = with_dependents(names)
    target_names = {s.name for s in targets}
    down([s.name for s in targets], echo=echo)
    with proc.file_lock(_lock_path()):
        for svc in targets:
            if "postgres" not in target_names:
                svc.reset_extra()
            for path in svc.data_paths():
                shutil.rmtree(path, ignore_errors=True)
            if echo:
                echo(f"[{svc.name}] data wiped: {', '.join(str(p) for p in svc.data_paths()) or '-'}")


def status() -> list[dict]:
    """One row per service: state, pid, port, memory (RSS and PSS of the process tree), uptime, url."""
    rows = []
    for name in SERVICE_NAMES:
        svc = SERVICE_CLASSES[name]()
        st, info = state(svc)
        row: dict = {
            "name": name,
            "state": st,
            "pid": info.pid if info else None,
            "port": svc.port,
            "url": svc.info().url,
            "rss_mb": None,
            "pss_mb": None,
            "procs": None,
            "uptime_s": None,
        }
        if info is not None:
            rss, pss, count = proc.memory_kb(info.pid)
            row.update(
                rss_mb=round(rss / 1024, 1),
                pss_mb=round(pss / 1024, 1) if pss is not None else None,
                procs=count,
                uptime_s=round(time.time() - info.started_at),
            )
        rows.append(row)
    return rows


def connection_info(names: Iterable[str] | None = None) -> dict[str, ConnectionInfo]:
    """Connection info for the services without starting or checking anything."""
    return {svc.name: _info_with_pid(svc) for svc in resolve(names, with_deps=False)}
