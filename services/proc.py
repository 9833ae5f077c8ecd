"""Process management shared by every dev service: pid files, detached spawn, stop, port waits, log tails.

Services are started in their own session (``start_new_session=True``) so they outlive the CLI or the
pytest process that started them; pid files record the process start time so a recycled pid is never
mistaken for our server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOG_ROTATE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class PidInfo:
    """What a pid file records about a service process."""

    pid: int
    start_ticks: int
    cmd: list[str]
    started_at: float


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is the state), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces/parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, started at ``start_ticks``."""
    if pid <= 0:
        return False
    # Reap it if it is our own dead child (the API may be used from a long-lived pytest process).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def read_pid_file(path: Path) -> PidInfo | None:
    try:
        data = json.loads(path.read_text())
        return PidInfo(
            int(data["pid"]), int(data["start_ticks"]), list(data["cmd"]), float(data["started_at"])
        )
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def write_pid_file(path: Path, pid: int, cmd: Sequence[str]) -> PidInfo:
    info = PidInfo(pid, process_start_ticks(pid) or 0, list(cmd), time.time())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info.__dict__))
    tmp.replace(path)
    return info


def live_pid(path: Path) -> PidInfo | None:
    """The pid file's process if it is still the same running process; removes a stale pid file."""
    info = read_pid_file(path)
    if info is None:
        return None
    if pid_alive(info.pid, info.start_ticks):
        return info
    path.unlink(missing_ok=True)
    return None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.25,
    max_interval: float = 2.0,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Sleep-poll ``predicate`` until it is true or ``timeout`` passes (or ``alive`` turns false).

    Exceptions from the predicate count as "not yet". The interval backs off so waiting costs no CPU.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - readiness probes fail in many ways while a server boots
            pass
        if alive is not None and not alive():
            return False
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(interval, deadline - now))
        interval = min(interval * 1.5, max_interval)


def rotate_log(log_path: Path) -> None:
    """Keep one previous generation once a log grows past LOG_ROTATE_BYTES."""
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > LOG_ROTATE_BYTES:
            log_path.replace(log_path.with_suffix(log_path.suffix + ".1"))


def spawn_detached(
    cmd: Sequence[str],
    log_path: Path,
    pid_path: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> PidInfo:
    """Start ``cmd`` in a new session with stdout+stderr appended to ``log_path``; write its pid file.

    ``user`` switches to that OS user (and its primary group) before exec, e.g. ``postgres``, which refuses
    to run as root. The spawned pid is the server itself, not a wrapper, so signals reach it directly.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log_path)
    with open(log_path, "ab", buffering=0) as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n===== {stamp} starting: {' '.join(cmd)}\n".encode())
        kwargs: dict = {}
        if user is not None:
            import grp
            import pwd

            pw = pwd.getpwnam(user)
            kwargs.update(
                user=pw.pw_uid,
                group=pw.pw_gid,
                extra_groups=[g.gr_gid for g in grp.getgrall() if user in g.gr_mem] or [pw.pw_gid],
            )
        proc = subprocess.Popen(  # noqa: S603 - fixed argv built by the services package
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
            **kwargs,
        )
    # Let the Popen object go without a ResourceWarning; pid_alive() reaps it if it dies while we live.
    proc.returncode = 0
    return write_pid_file(pid_path, proc.pid, cmd)


def stop_process(pid_path: Path, sig: int = signal.SIGTERM, timeout: float = 30.0) -> str:
    """Stop the pid file's process: ``sig`` first, SIGKILL to its whole process group after ``timeout``.

    Returns "not running", "stopped" or "killed".
    """
    info = live_pid(pid_path)
    if info is None:
        pid_path.unlink(missing_ok=True)
        return "not running"
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, sig)
    alive = lambda: pid_alive(info.pid, info.start_ticks)  # noqa: E731
    if wait_until(lambda: not alive(), timeout, interval=0.1, max_interval=0.5):
        result = "stopped"
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(info.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
        wait_until(lambda: not alive(), 10, interval=0.1)
        result = "killed"
    pid_path.unlink(missing_ok=True)
    return result


def tail(path: Path, n: int = 40) -> str:
    """Last ``n`` lines of a (possibly large) text file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block = min(size, max(8192, n * 400))
            while True:
                fh.seek(size - block)
                data = fh.read(block)
                if data.count(b"\n") > n or block == size:
                    break
                block = min(size, block * 2)
    except FileNotFoundError:
        return f"(no log file at {path})"
    lines = data.decode("utf-8", "replace").splitlines()[-n:]
    return "\n".join(lines)


def descendants(pid: int) -> list[int]:
    """``pid`` and all its descendant pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(children.get(current, []))
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        pass
    return 0


def _pss_kb(pid: int) -> int | None:
    """PSS of one process; 0 if it vanished meanwhile, None if the kernel does not expose it."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0 if not Path(f"/proc/{pid}").exists() else None
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def memory_kb(pid: int) -> tuple[int, int | None, int]:
    """(summed VmRSS, summed PSS or None when unavailable, process count) over the process tree.

    RSS double-counts shared memory (PostgreSQL's shared_buffers appears in every backend); PSS does not.
    """
    pids = descendants(pid)
    rss = sum(_status_kb(p, "VmRSS") for p in pids)
    pss_values = [_pss_kb(p) for p in pids]
    pss = None if any(v is None for v in pss_values) else sum(v for v in pss_values if v is not None)
    return rss, pss, len(pids)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock, so concurrent ``up`` calls (CLI, pytest workers) don't race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run(cmd: Sequence[str], *, log_path: Path | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a setup command (mvn, go, initdb...), appending its output to ``log_path``; raise on failure."""
    result = subprocess.run(  # noqa: S603
        list(cmd), capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs
    )
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-40:]
        raise SetupError(f"command failed ({result.returncode}): {' '.join(cmd)}\n" + "\n".join(output))
    return result


class SetupError(RuntimeError):
    """A service could not be installed, built, started or made ready."""


def echo_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
