"""What the benches that run a real ``dagster-daemon`` share: services, fresh databases, the daemon.

Light on purpose (no code location imported): a bench module that is also the daemon's code location
imports this, and so does every run worker the daemon launches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def service_urls() -> dict[str, str]:
    """The local PostgreSQL (admin URL) and Kafka bootstrap servers, started if they are not running."""
    import services

    info = services.ensure_up(["postgres", "kafka"])
    return {"pg": info["postgres"].url, "kafka": info["kafka"].url}


def fresh_database(admin_url: str, prefix: str) -> str:
    """A new, empty PostgreSQL database next to ``admin_url``'s; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return str(sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False))


def drop_database(admin_url: str, url: str) -> None:
    """Drop ``url``'s database, closing this process's pooled connections to it first."""
    from resources.warehouse import dispose_engines

    dispose_engines()
    name = sa.make_url(url).database
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def instance_home(prefix: str = "afluente_bench_home_") -> Path:
    """A temporary DAGSTER_HOME with the local instance file (``orchestration/dagster.local.yaml``)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copy(REPO / "orchestration" / "dagster.local.yaml", home / "dagster.yaml")
    return home


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.25) -> T | None:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


@contextmanager
def dagster_daemon(module: str, home: Path, env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster-daemon run -m module`` on the instance at ``home`` (log: ``home/daemon.log``), stopped
    on exit; ``env`` is added to this process's environment (warehouse URL, topics, ...)."""
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    with (home / "daemon.log").open("w") as log:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", module],
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield daemon
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
