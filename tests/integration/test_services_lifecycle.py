"""`python -m services up X` undoes `down X`: the dependents that `down` stopped come back (issue 14, item 9).

Run on private servers (own services home and ports): stopping the shared PostgreSQL would break
every other test on the machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pymongo import MongoClient

from services import ConnectionInfo
from tests.fixtures.private_services import private_services

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _pids(env: dict[str, str]) -> dict[str, str]:
    """service -> pid column of `status`, for the running ones."""
    out = _cli(env, "status").splitlines()[2:]
    return {cols[0]: cols[2] for cols in (line.split() for line in out) if cols[1] == "running"}


def _mongo_answers(port: str) -> bool:
    client: MongoClient = MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=5000)
    try:
        return client.admin.command("ping").get("ok") == 1.0
    finally:
        client.close()


def test_up_postgres_restarts_the_ferretdb_that_down_postgres_stopped(mongo_server: ConnectionInfo) -> None:
    # mongo_server: the shared FerretDB is built, so the private home links its binary.
    with private_services("ferretdb") as private:
        env = private.env
        assert set(_pids(env)) == {"postgres", "ferretdb"}

        down = _cli(env, "down", "postgres")
        assert "[ferretdb] stopped" in down and "[postgres] stopped" in down
        assert _pids(env) == {}

        up = _cli(env, "up", "postgres")
        assert "also starting ferretdb" in up
        running = _pids(env)
        assert set(running) == {"postgres", "ferretdb"}  # before: only postgres
        assert _mongo_answers(env["AFLUENTE_MONGO_PORT"])

        # Idempotent: a second `up` starts nothing, the same processes keep running.
        again = _cli(env, "up", "postgres")
        assert "[postgres] already running" in again and "also starting" not in again
        assert _pids(env) == running

        # A service named in `down` stays down: only what `down` stopped as a dependent comes back.
        _cli(env, "down", "ferretdb")
        _cli(env, "down", "postgres")
        up = _cli(env, "up", "postgres")
        assert "also starting" not in up
        assert set(_pids(env)) == {"postgres"}
        assert private.states()["ferretdb"] == "stopped"
