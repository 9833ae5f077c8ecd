"""Layers point down: the read API runs without Dagster, and the Dagster resources are the clients."""

import subprocess
import sys
from pathlib import Path

from resources.search import SearchResource
from resources.search_client import SearchClient
from resources.warehouse import WarehouseResource
from resources.warehouse_core import Warehouse

REPO = Path(__file__).resolve().parents[2]


def test_the_read_api_builds_and_configures_its_logs_without_importing_dagster(tmp_path: Path) -> None:
    """Every router is mounted (create_app imports them) and uvicorn's JSON log config is applied."""
    code = (
        "import logging.config, sys\n"
        "from api.app import create_app\n"
        "from resources.json_logging import uvicorn_log_config\n"
        f"app = create_app('duckdb:///{tmp_path}/w.duckdb')\n"
        "logging.config.dictConfig(uvicorn_log_config('INFO', 'json'))\n"
        "logging.getLogger('api.test').warning('served')\n"
        "paths = set(app.openapi()['paths'])\n"
        "for prefix in ('/v1/commerce', '/v1/exports', '/v1/usage', '/v1/ops', '/dashboard'):\n"
        "    assert any(p.startswith(prefix) for p in paths), (prefix, sorted(paths))\n"
        "layers = ('dagster', 'orchestration', 'sensors', 'assets', 'io_managers')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in layers)\n"
        "print(len(loaded)); assert not loaded, loaded[:10]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "AFLUENTE_LOG_FILE": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "0"
    assert '"message": "served"' in done.stderr  # the JSON formatter ran, outside Dagster


def test_the_dagster_resources_are_the_clients_not_copies() -> None:
    """One mechanism: the resources inherit every method of the Dagster-free clients."""
    warehouse = WarehouseResource(url="duckdb:///:memory:")
    assert isinstance(warehouse, Warehouse) and warehouse.dialect == "duckdb"
    for name in ("begin", "connect", "scalar", "read_frame", "write_table", "table_exists"):
        assert getattr(WarehouseResource, name) is getattr(Warehouse, name), name
    search = SearchResource(url="http://127.0.0.1:9", engine="elasticsearch")
    assert isinstance(search, SearchClient)
    for name in ("client", "bulk_ndjson", "bulk_index", "search", "put_alias_atomically"):
        assert getattr(SearchResource, name) is getattr(SearchClient, name), name
    assert not search.ping()  # nothing listens on port 9: the shared client answers False, no raise
