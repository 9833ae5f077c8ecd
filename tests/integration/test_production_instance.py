"""The production instance and workspace, end to end on the real PostgreSQL.

``orchestration/dagster.yaml`` is used unchanged: ``DAGSTER_PG_*`` point at an isolated database. A
real ``dagster api grpc`` serves ``orchestration.definitions``; a real ``dagster-webserver`` loads it
through ``orchestration/workspace.grpc.yaml`` (``DAGSTER_GRPC_*``). No daemon: a submitted run must
stay queued.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultRunLauncher,
    QueuedRunCoordinator,
    asset,
    materialize,
)
from dagster_docker import DockerRunLauncher
from dagster_graphql import DagsterGraphQLClient
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from sqlalchemy.engine import make_url

import services
from services.base import ConnectionInfo
from services.postgres_server import pg_bin_dir

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "afluente"

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings("ignore:Handling yaml-defined logging"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A subprocess in its own process group, terminated (then killed) with its children."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def _wait(what: str, ready: Any, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.3)
    pytest.fail(f"{what} not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation {
            repositories { name assetNodes { assetKey { path } } jobs { name } sensors { name } }
          }
          ... on PythonError { message }
        }
      }
    }
  }
}
"""


@pytest.fixture
def production_env(pg_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """DAGSTER_HOME holding orchestration/dagster.yaml as is, DAGSTER_PG_* of an isolated database."""
    url = make_url(pg_database_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "orchestration/dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": str(url.host),
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_USER": str(url.username),
        "DAGSTER_PG_PASSWORD": str(url.password),
        "DAGSTER_PG_DB": str(url.database),
        # The code location only loads; nothing may touch the repository's own data folder.
        "WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "AFLUENTE_LANDING_DIR": str(tmp_path / "landing"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_production_instance_stores_runs_queues_and_serves_the_grpc_location(
    production_env: dict[str, str], pg_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    grpc_port, web_port = _free_port(), _free_port()
    env = {**os.environ, **production_env, "PYTHONPATH": str(ROOT)}
    env.update({"DAGSTER_GRPC_HOST": "127.0.0.1", "DAGSTER_GRPC_PORT": str(grpc_port)})
    grpc_log, web_log = tmp_path / "grpc.log", tmp_path / "webserver.log"
    grpc_cmd = [str(BIN / "dagster"), "api", "grpc", "-m", "orchestration.definitions", "-h", "127.0.0.1"]

    with _process([*grpc_cmd, "-p", str(grpc_port)], env, grpc_log) as grpc:
        # While the code server loads: the instance itself, in this process.
        home = production_env["DAGSTER_HOME"]
        with DagsterInstance.from_config(home) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
            assert isinstance(instance.run_launcher, DefaultRunLauncher)

            @asset(key=AssetKey(["raw", "probe"]))
            def probe(context) -> int:
                context.log.info("probe ran")
                return 1

            capsys.readouterr()
            result = materialize([probe], instance=instance)
            assert result.success
            run = instance.get_run_by_id(result.run_id)
            assert run is not None and run.status == DagsterRunStatus.SUCCESS
            events = {e.dagster_event.event_type for e in instance.all_logs(result.run_id) if e.dagster_event}
            assert {DagsterEventType.RUN_START, DagsterEventType.ASSET_MATERIALIZATION} <= events
            assert DagsterEventType.RUN_SUCCESS in events
            assert instance.get_latest_materialization_event(AssetKey(["raw", "probe"])) is not None
        # The production python_logs section: the run's lines on stdout as JSON with run id and asset key.
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        (line,) = [item for item in lines if item["message"] == "probe ran"]
        assert (line["run_id"], line["asset_key"]) == (result.run_id, "raw/probe")

        # Stored in PostgreSQL itself (not a SQLite fallback under DAGSTER_HOME).
        plain_url = pg_database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain_url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)
            ).fetchone() == (1,)
            stored = conn.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,)
            ).fetchone()
            assert stored is not None and stored[0] >= 5
        assert not list(Path(home).glob("**/*.db"))

        # The Docker variant reads the same storage; its launcher needs no Docker engine to load.
        docker_home = tmp_path / "docker_home"
        docker_home.mkdir()
        shutil.copy(ROOT / "orchestration/dagster.docker.yaml", docker_home / "dagster.yaml")
        with DagsterInstance.from_config(str(docker_home)) as docker_instance:
            assert isinstance(docker_instance.run_launcher, DockerRunLauncher)
            assert docker_instance.get_run_by_id(result.run_id) is not None

        _wait(
            "dagster api grpc", lambda: "Started Dagster code server" in grpc_log.read_text(), grpc, grpc_log
        )
        web_cmd = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port)]
        web_cmd += ["-w", str(ROOT / "orchestration/workspace.grpc.yaml")]
        with _process(web_cmd, env, web_log) as web:
            # The compose healthcheck's URL.
            _wait(
                "dagster-webserver",
                lambda: _http_ok(f"http://127.0.0.1:{web_port}/server_info"),
                web,
                web_log,
            )
            workspace = _graphql(web_port, WORKSPACE_QUERY)["workspaceOrError"]
            assert workspace["__typename"] == "Workspace"
            (entry,) = workspace["locationEntries"]
            assert entry["name"] == LOCATION and entry["loadStatus"] == "LOADED", entry
            location = entry["locationOrLoadError"]
            assert location["__typename"] == "RepositoryLocation", location
            (repository,) = location["repositories"]
            from orchestration.definitions import defs

            expected_assets = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
            served_assets = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
            assert served_assets == expected_assets
            assert {s["name"] for s in repository["sensors"]} == {s.name for s in defs.sensors}
            assert "refresh_export_reports" in {j["name"] for j in repository["jobs"]}

            # A run submitted through the webserver is queued by the QueuedRunCoordinator (no daemon).
            client = DagsterGraphQLClient("127.0.0.1", port_number=web_port)
            run_id = client.submit_job_execution(
                "refresh_export_reports",
                repository_location_name=LOCATION,
                repository_name=repository["name"],
                tags={"afluente/landing_file": "probe.csv"},
            )
            with DagsterInstance.from_config(home) as instance:
                queued = instance.get_run_by_id(run_id)
                assert queued is not None and queued.status == DagsterRunStatus.QUEUED
                assert queued.tags["afluente/landing_file"] == "probe.csv"
                enqueued = [
                    e
                    for e in instance.all_logs(run_id)
                    if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_ENQUEUED
                ]
                assert len(enqueued) == 1
                assert instance.get_runs_count() == 2
            time.sleep(1)
            assert client.get_run_status(run_id) == DagsterRunStatus.QUEUED  # still: nothing dequeues it
    elapsed = time.monotonic() - started
    print(f"production instance end to end: {elapsed:.1f}s")


def test_compose_init_script_creates_the_dagster_database_once(
    postgres_server: ConnectionInfo,
) -> None:
    """docker/postgres/initdb/10-dagster-database.sh, as the postgres image runs it, on the real server."""
    bindir = pg_bin_dir()
    psql = str(bindir / "psql") if bindir and (bindir / "psql").exists() else shutil.which("psql")
    assert psql, "psql comes with the PostgreSQL packages the dev services install"
    name = f"t_dagster_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    env = {
        **os.environ,
        "PATH": f"{Path(psql).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PGHOST": postgres_server.host,
        "PGPORT": str(postgres_server.port),
        "PGPASSWORD": services.PG_PASSWORD,
        "POSTGRES_USER": services.PG_USER,
        "POSTGRES_DB": services.PG_DATABASE,
        "DAGSTER_PG_DB": name,
    }
    script = ROOT / "docker/postgres/initdb/10-dagster-database.sh"
    admin = f"postgresql://{services.PG_USER}:{services.PG_PASSWORD}@{postgres_server.host}:{postgres_server.port}/postgres"
    try:
        for _ in range(2):  # a second run (volume re-used) changes nothing
            subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True, timeout=60)
        with psycopg.connect(admin) as conn:
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)
            ).fetchall()
        assert owner == [(services.PG_USER,)]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
