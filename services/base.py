"""Settings (home dir, ports, credentials) and the Service base class shared by the four dev servers.

Everything a service downloads, builds or writes lives under ONE directory, ``$AFLUENTE_SERVICES_HOME``
(default ``<repo>/.services``), so wiping that directory returns the machine to a clean state.
Ports are read from the environment at call time (never at import time), so tests can override them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services import proc

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_SRC = Path(__file__).resolve().parent

# Credentials shared by the local services and docker-compose.yml (POSTGRES_USER/PASSWORD/DB).
PG_USER = "afluente"
PG_PASSWORD = "afluente"
PG_DATABASE = "afluente"
FERRETDB_DATABASE = "ferretdb"  # FerretDB keeps its data in this PostgreSQL database
HOST = "127.0.0.1"

# Service name -> (port env var, default port).
PORT_ENV: dict[str, tuple[str, int]] = {
    "postgres": ("AFLUENTE_PG_PORT", 5432),
    "kafka": ("AFLUENTE_KAFKA_PORT", 9092),
    "opensearch": ("AFLUENTE_OPENSEARCH_PORT", 9200),
    "ferretdb": ("AFLUENTE_MONGO_PORT", 27017),
}
DEFAULT_PORTS: dict[str, int] = {name: default for name, (_, default) in PORT_ENV.items()}
# Secondary ports (KRaft controller, OpenSearch transport) also stay configurable.
KAFKA_CONTROLLER_PORT_ENV = ("AFLUENTE_KAFKA_CONTROLLER_PORT", 9093)
OPENSEARCH_TRANSPORT_PORT_ENV = ("AFLUENTE_OPENSEARCH_TRANSPORT_PORT", 9300)


def env_port(var: str, default: int) -> int:
    value = os.environ.get(var, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise proc.SetupError(f"{var}={value!r} is not a valid TCP port")
    return int(value)


def port_for(name: str) -> int:
    var, default = PORT_ENV[name]
    return env_port(var, default)


def services_home() -> Path:
    """``$AFLUENTE_SERVICES_HOME`` or ``<repo>/.services``, created on demand."""
    raw = os.environ.get("AFLUENTE_SERVICES_HOME", "").strip()
    home = Path(raw).expanduser().resolve() if raw else REPO_ROOT / ".services"
    home.mkdir(parents=True, exist_ok=True)
    return home


def is_root() -> bool:
    return os.geteuid() == 0


@dataclass
class ConnectionInfo:
    """How to reach one running service; ``env`` holds the variables the project's resources read."""

    name: str
    host: str
    port: int
    url: str
    pid: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


Echo = Callable[[str], None]


class Step:
    """Times one step of a service's bring-up and reports it as ``[name] step: 1.23s``."""

    def __init__(self, service: str, echo: Echo | None) -> None:
        self.service = service
        self.echo = echo
        self.timings: dict[str, float] = {}

    def __call__(self, step: str, detail: str = "") -> _StepTimer:
        return _StepTimer(self, step, detail)

    def record(self, step: str, seconds: float, detail: str = "") -> None:
        self.timings[step] = self.timings.get(step, 0.0) + seconds
        if self.echo:
            suffix = f"  ({detail})" if detail else ""
            self.echo(f"[{self.service}] {step}: {seconds:.2f}s{suffix}")


class _StepTimer:
    def __init__(self, step: Step, name: str, detail: str) -> None:
        self.step, self.name, self.detail = step, name, detail

    def __enter__(self) -> _StepTimer:
        self.t0 = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.step.record(self.name, time.monotonic() - self.t0, self.detail)


class Service:
    """One dev server. Subclasses implement install/prepare/command/probe/info."""

    name: str = ""
    depends_on: tuple[str, ...] = ()
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    start_timeout: float = 120.0
    run_as: str | None = None  # OS user to run the server as (when we are root)

    # ----- paths
    @property
    def home(self) -> Path:
        return services_home()

    @property
    def dir(self) -> Path:
        return self.home / self.name

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "run" / f"{self.name}.pid"

    @property
    def port(self) -> int:
        return port_for(self.name)

    def data_paths(self) -> list[Path]:
        """What ``reset`` wipes (data only, never downloaded/built artefacts)."""
        return []

    # ----- lifecycle hooks
    def install(self, step: Step) -> None:
        """Download/build what is missing; must be a cheap no-op when everything is present."""

    def prepare(self, step: Step) -> None:
        """Create data dirs / config files before each start."""

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        """argv, environment (None = inherit), cwd."""
        raise NotImplementedError

    def probe(self) -> bool:
        """Deep readiness check against the real server (raises or returns False while not ready)."""
        raise NotImplementedError

    def after_ready(self, step: Step) -> None:
        """One-time setup needing the running server (databases, ...)."""

    def info(self) -> ConnectionInfo:
        raise NotImplementedError

    def reset_extra(self) -> None:
        """Extra cleanup for ``reset`` besides deleting data_paths()."""


# ----- toolchain helpers shared by the JVM and Go services


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


_JAVA_CACHE: dict[str, tuple[str, int]] = {}


def find_java(tool: str = "java") -> tuple[str, int]:
    """A JDK >= 17, preferring 17/21 LTS (OpenSearch 2.x and Kafka 4.x are tested there).

    Order: $AFLUENTE_JAVA_HOME, $JAVA_HOME, ``java`` on PATH, then /usr/lib/jvm/*.
    """
    if tool in _JAVA_CACHE:
        return _JAVA_CACHE[tool]
    candidates: list[str] = []
    for var in ("AFLUENTE_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(str(Path(os.environ[var]) / "bin" / tool))
    on_path = shutil.which(tool)
    if on_path:
        candidates.append(str(Path(on_path).resolve()))
    candidates += (
        sorted(str(p) for p in Path("/usr/lib/jvm").glob(f"*/bin/{tool}"))
        if Path("/usr/lib/jvm").is_dir()
        else []
    )
    found: list[tuple[str, int]] = []
    for cand in dict.fromkeys(candidates):
        if not os.access(cand, os.X_OK):
            continue
        java = cand if tool == "java" else str(Path(cand).with_name("java"))
        major = _java_major(java)
        if major is not None and major >= 17:
            found.append((cand, major))
            if major in (17, 21):
                _JAVA_CACHE[tool] = (cand, major)
                return cand, major
    if found:
        _JAVA_CACHE[tool] = found[0]
        return found[0]
    raise proc.SetupError(
        f"no JDK >= 17 with `{tool}` found (set AFLUENTE_JAVA_HOME); "
        "on Debian: apt-get install -y openjdk-17-jdk"
    )


def find_tool(name: str, apt_package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise proc.SetupError(f"`{name}` is not installed; on Debian: apt-get install -y {apt_package}")
    return path


def maven_copy_dependencies(pom: Path, out_dir: Path, log_path: Path) -> int:
    """Resolve ``pom``'s runtime dependencies from Maven Central into ``out_dir`` (atomically).

    The local Maven repository also lives under the services home, so a wiped home re-downloads.
    Returns the number of jars.
    """
    mvn = find_tool("mvn", "maven")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    repo = services_home() / "maven" / "repository"
    java, _ = find_java("java")
    env = dict(os.environ, JAVA_HOME=str(Path(java).parent.parent))
    proc.run(
        [
            mvn,
            "-q",
            "-B",
            f"-Dmaven.repo.local={repo}",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
        ],
        log_path=log_path,
        env=env,
    )
    jars = list(tmp.glob("*.jar"))
    if not jars:
        raise proc.SetupError(f"maven copied no jars for {pom}")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)
    return len(jars)
