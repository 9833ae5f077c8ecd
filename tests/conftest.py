"""Shared fixtures: real services come from tests/fixtures/services.py (session-scoped, isolated names)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from resources.warehouse import WarehouseResource, dispose_engines

pytest_plugins = ["tests.fixtures.services"]


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every pipeline test runs on the embedded DuckDB and on the real PostgreSQL server."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        yield request.getfixturevalue("pg_database_url")
    dispose_engines()


@pytest.fixture
def warehouse(warehouse_url: str) -> WarehouseResource:
    return WarehouseResource(url=warehouse_url)


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A real (ephemeral, on-disk) Dagster instance: runs, events, dynamic partitions, sensor state."""
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster_home")) as instance:
        yield instance
