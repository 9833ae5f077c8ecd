"""The read API against its own OpenAPI schema: schemathesis with every check, on every operation.

A generated client trusts the schema: every answer must match it (timestamps with a zone, money as
exact decimal strings, the 503 "not produced yet" answer declared), every value it allows must be
accepted and every value it forbids refused with a 4xx (a NUL byte, ``0`` as a date, a year-1
instant, an unknown method, a missing or wrong API key). Run on both warehouses, with nothing
produced (the data routes answer their declared 503, the only 5xx allowed there) and populated by
the real pipelines. Bounded (about a minute): a fixed seed, a few fuzzed examples per operation
(positive and negative), and on the populated warehouses the deterministic coverage phase too
(boundaries, wrong types, NUL bytes, unexpected methods).
"""

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis import Case

from api.app import create_app
from orchestration.freshness import utc_now
from resources.kafka import KafkaResource
from resources.search import SearchResource
from resources.warehouse import WarehouseResource, dispose_engines
from services import ConnectionInfo
from tests.fixtures.services import fresh_pg_database, fresh_search_prefix, unique_name
from tests.integration.test_api_commerce import load_commerce
from tests.integration.test_api_exports import load_exports
from tests.integration.test_ops_api import GERAL, incident, insert_incidents, record
from tests.integration.test_usage_search import load_usage, serve_insights

_CONFIG = """
seed = 14
[generation]
max-examples = 4
allow-x00 = true
[phases.coverage]
enabled = {coverage}
[phases.stateful]
enabled = false
[checks.not_a_server_error]
expected-statuses = {allowed}

# The subscriptions marts are not built by this module's population yet (their pipeline starts from
# Kafka commands): their metrics may answer the declared 503; every other check still applies to them.
[[operations]]
include-path-regex = "^(/v1)?/subscriptions/metrics/"
[operations.checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""


def _schema(*, nothing_produced: bool) -> schemathesis.BaseSchema:
    """The app's schema; which warehouse answers is chosen per test (``case.call_and_validate(app=...)``)."""
    allowed = ["2xx", "3xx", "4xx", *(["503"] if nothing_produced else [])]
    coverage = "false" if nothing_produced else "true"
    config = schemathesis.Config.from_str(_CONFIG.format(allowed=allowed, coverage=coverage))
    return schemathesis.openapi.from_asgi("/openapi.json", create_app("duckdb:///:memory:"), config=config)


nothing_produced = _schema(nothing_produced=True)
populated = _schema(nothing_produced=False)


# A real key with every role: access control is on, as in production, so the schema's security
# requirement is true (schemathesis also checks that a missing or wrong key is refused). Commands go
# to a topic of their own on the real Kafka.
_KEY = "schema-test-key"
_KEY_ENTRY = f"schema-test:viewer+ops+writer:{hashlib.sha256(_KEY.encode()).hexdigest()}"


@pytest.fixture(scope="module")
def api_env(kafka_server: ConnectionInfo, request: pytest.FixtureRequest) -> Iterator[None]:
    kafka = KafkaResource(bootstrap_servers=kafka_server.url)
    topic = unique_name(request, 200, sep=".")
    kafka.create_topic(topic)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("API_AUTH", "true")
        monkeypatch.setenv("API_KEYS", _KEY_ENTRY)
        monkeypatch.setenv("API_RATE_LIMIT", "off")  # a few thousand requests from one key
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_server.url)
        monkeypatch.setenv("SUBSCRIPTIONS_COMMANDS_TOPIC", topic)
        yield
    kafka.delete_topic(topic)


# ----- per engine, one empty and one populated warehouse for the whole module (populating takes seconds)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@contextmanager
def _warehouse(engine: str, request: pytest.FixtureRequest, tmp: Path) -> Iterator[WarehouseResource]:
    if engine == "duckdb":
        yield WarehouseResource(url=f"duckdb:///{tmp / 'warehouse.duckdb'}")
    else:
        with fresh_pg_database(request.getfixturevalue("postgres_server"), unique_name(request, 63)) as url:
            yield WarehouseResource(url=url)
            dispose_engines()  # pooled connections closed before the database is dropped
    dispose_engines()


@pytest.fixture(scope="module")
def search_prefix(opensearch_server: ConnectionInfo, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_search_prefix(opensearch_server, unique_name(request, 50, sep="-") + "-") as prefix:
        yield prefix


@pytest.fixture(scope="module")
def search(opensearch_server: ConnectionInfo) -> SearchResource:
    return SearchResource(url=opensearch_server.url, engine="opensearch")


@pytest.fixture(scope="module")
def empty_app(
    api_env: None,
    engine: str,
    search: SearchResource,
    search_prefix: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FastAPI]:
    """Nothing produced: no table, no insight index under the prefix."""
    with _warehouse(engine, request, tmp_path_factory.mktemp("empty")) as warehouse:
        yield serve_insights(create_app(warehouse.url), search, search_prefix + "none-")


@pytest.fixture(scope="module")
def populated_app(
    api_env: None,
    engine: str,
    search: SearchResource,
    search_prefix: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FastAPI]:
    """Every table and index the API reads, from the real pipelines; incidents and freshness records."""
    tmp = tmp_path_factory.mktemp("populated")
    with _warehouse(engine, request, tmp) as warehouse, pytest.MonkeyPatch.context() as monkeypatch:
        load_commerce(warehouse, tmp / "commerce")
        load_exports(warehouse, tmp / "exports")
        load_usage(warehouse, search, search_prefix, tmp / "usage", monkeypatch)
        now = utc_now()
        insert_incidents(
            warehouse,
            [
                incident("retried", now - dt.timedelta(minutes=5)),
                incident("gave-up", now - dt.timedelta(hours=1), diagnosis="permanent", action="gave_up"),
            ],
        )
        record(warehouse, {GERAL: dt.timedelta(hours=30)})  # one stale aggregate, the rest fresh
        yield serve_insights(create_app(warehouse.url), search, search_prefix)


@nothing_produced.parametrize()
def test_nothing_produced_every_operation_keeps_its_schema(case: Case, empty_app: FastAPI) -> None:
    case.call_and_validate(app=empty_app, headers={"X-API-Key": _KEY})


@populated.parametrize()
def test_populated_every_operation_keeps_its_schema(case: Case, populated_app: FastAPI) -> None:
    case.call_and_validate(app=populated_app, headers={"X-API-Key": _KEY})
