"""Transient vs permanent: real exceptions of the real client libraries, live and as Dagster stores them."""

import csv
import gzip
import socket
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import confluent_kafka
import duckdb
import kafka.errors
import opensearchpy
import psycopg
import psycopg.errors
import pymongo.errors
import pytest
from dagster import (
    AssetExecutionContext,
    Config,
    DagsterEventType,
    DagsterInstance,
    Failure,
    MaterializeResult,
    asset,
    materialize,
)
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer
from opensearchpy import OpenSearch
from pymongo import MongoClient

from assets.sources.kafka_topic._consumer import RangeUnavailableError
from resources.error_diagnosis import (
    NETWORK_RETRY_POLICY,
    diagnose,
    error_summary,
    fail_fast_on_permanent_errors,
    permanent_errors_fail_fast,
)
from resources.file_errors import UnreadableFileError
from resources.warehouse import WarehouseResource, dispose_engines


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:  # noqa: BLE001 - the point is to capture whatever the library raises
        return exc
    raise AssertionError("expected the call to fail")


@pytest.fixture(scope="module")
def locked_duckdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A DuckDB file whose write lock another process holds."""
    path = tmp_path_factory.mktemp("lock") / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('locked', flush=True); "
            "time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield path
    finally:
        holder.kill()
        holder.wait()


def _transient_cases(port: int, locked: Path) -> dict[str, Callable[[], object]]:
    return {
        "socket refused": lambda: socket.create_connection(("127.0.0.1", port), timeout=2),
        "psycopg refused": lambda: psycopg.connect(
            f"host=127.0.0.1 port={port} user=x dbname=x connect_timeout=2"
        ),
        "sqlalchemy refused": lambda: WarehouseResource(
            url=f"postgresql+psycopg://x:y@127.0.0.1:{port}/x"
        ).scalar("SELECT 1"),
        "duckdb lock": lambda: duckdb.connect(str(locked)),
        "duckdb lock via sqlalchemy": lambda: WarehouseResource(
            url=f"duckdb:///{locked}", lock_timeout_s=0
        ).scalar("SELECT 1"),
        "kafka bootstrap timeout": lambda: KafkaConsumer(
            bootstrap_servers=f"127.0.0.1:{port}", bootstrap_timeout_ms=500
        ),
        "mongo server selection": lambda: MongoClient(
            f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=200
        ).admin.command("ping"),
        "opensearch refused": lambda: OpenSearch([f"http://127.0.0.1:{port}"], max_retries=0).info(),
        "elasticsearch refused": lambda: Elasticsearch(f"http://127.0.0.1:{port}", max_retries=0).info(),
    }


TRANSIENT_INSTANCES: dict[str, BaseException] = {
    "postgres admin shutdown": psycopg.errors.AdminShutdown(
        "terminating connection due to administrator command"
    ),
    "postgres shutting down": psycopg.errors.CannotConnectNow("the database system is shutting down"),
    "postgres too many connections": psycopg.errors.TooManyConnections("sorry, too many clients already"),
    "postgres serialization": psycopg.errors.SerializationFailure("could not serialize access"),
    "psycopg server closed": psycopg.OperationalError("server closed the connection unexpectedly"),
    # kafka-python 3 raises KafkaTimeoutError("Unable to bootstrap ...") where 2.x raised NoBrokersAvailable
    "kafka broker not available": kafka.errors.BrokerNotAvailableError(),
    "kafka timeout": kafka.errors.KafkaTimeoutError("Failed to update metadata after 60.0 secs."),
    "kafka connection": kafka.errors.KafkaConnectionError("Connection at 127.0.0.1:9092 closed"),
    "kafka retriable": kafka.errors.NotLeaderForPartitionError(),
    "kafka retriable not listed": kafka.errors.UnknownTopicOrPartitionError(),
    "mongo autoreconnect": pymongo.errors.AutoReconnect("connection closed"),
    "mongo network timeout": pymongo.errors.NetworkTimeout("timed out"),
    "mongo not primary": pymongo.errors.NotPrimaryError("not primary"),
    "opensearch timeout": opensearchpy.ConnectionTimeout("TIMEOUT", "Read timed out", None),
    "opensearch 429": opensearchpy.TransportError(429, "es_rejected_execution_exception", {}),
    "opensearch 503": opensearchpy.TransportError(503, "search_phase_execution_exception", {}),
    "builtin timeout": TimeoutError("timed out"),
}

PERMANENT_INSTANCES: dict[str, BaseException] = {
    "postgres syntax": psycopg.errors.SyntaxError('syntax error at or near "SELEC"'),
    "postgres undefined table": psycopg.errors.UndefinedTable('relation "nope" does not exist'),
    "postgres undefined column": psycopg.errors.UndefinedColumn('column "nope" does not exist'),
    "postgres password": psycopg.errors.InvalidPassword('password authentication failed for user "x"'),
    "psycopg auth on connect": psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
        'authentication failed for user "x"'
    ),
    "psycopg missing database": psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "nope" '
        "does not exist"
    ),
    "unreadable file": UnreadableFileError("not a CSV file: no header row"),
    "range unavailable": RangeUnavailableError("topic[0]: requested offsets up to 10 but the log ends at 5"),
    "kafka auth": kafka.errors.TopicAuthorizationFailedError(),
    "kafka config": kafka.errors.KafkaConfigurationError("Unrecognized configs"),
    "mongo auth": pymongo.errors.OperationFailure("Authentication failed.", code=18),
    "opensearch 401": opensearchpy.AuthenticationException(401, "security_exception", {}),
    "opensearch bad request": opensearchpy.RequestError(400, "mapper_parsing_exception", {}),
    "value error": ValueError("invalid usage alert settings"),
    # Parse errors of a landed file's bytes, raised by the real parsers (issue: csv.Error was "unknown").
    "csv field limit": _raised(lambda: next(csv.reader(["x" * 200_000]))),
    "zlib corrupt": _raised(lambda: zlib.decompress(b"not zlib data")),
    "gzip corrupt": _raised(lambda: gzip.decompress(b"\x1f\x8bnot really gzip")),
}


def test_network_retry_policy_has_backoff_and_jitter() -> None:
    policy = NETWORK_RETRY_POLICY
    assert policy.max_retries >= 3 and policy.delay and policy.delay >= 1
    assert policy.backoff is not None and policy.backoff.value == "EXPONENTIAL"
    assert policy.jitter is not None and policy.jitter.value == "PLUS_MINUS"


def test_errors_raised_by_real_clients_against_unreachable_services_are_transient(
    closed_port: int, locked_duckdb: Path
) -> None:
    for name, action in _transient_cases(closed_port, locked_duckdb).items():
        exc = _raised(action)
        diagnosis = diagnose(exc)
        assert diagnosis.kind == "transient", (name, type(exc), exc, diagnosis)
        assert diagnosis.explanation
    dispose_engines()


@pytest.mark.parametrize("name", sorted(TRANSIENT_INSTANCES))
def test_transient_error_classes(name: str) -> None:
    diagnosis = diagnose(TRANSIENT_INSTANCES[name])
    assert diagnosis.kind == "transient", diagnosis


@pytest.mark.parametrize("name", sorted(PERMANENT_INSTANCES))
def test_permanent_error_classes(name: str) -> None:
    diagnosis = diagnose(PERMANENT_INSTANCES[name])
    assert diagnosis.kind == "permanent", diagnosis


def test_real_sql_errors_on_duckdb_are_permanent(tmp_path: Path) -> None:
    connection = duckdb.connect()
    for sql in ("SELEC 1", "SELECT * FROM missing_table", "SELECT missing_column FROM range(3)"):
        diagnosis = diagnose(_raised(lambda sql=sql: connection.execute(sql)))
        assert diagnosis.kind == "permanent", (sql, diagnosis)
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    diagnosis = diagnose(_raised(lambda: warehouse.scalar("SELECT * FROM nowhere.nothing")))
    assert diagnosis.kind == "permanent" and "CatalogException" in diagnosis.error_class
    dispose_engines()


def test_invalid_config_is_permanent() -> None:
    class Sample(Config):
        count: int

    assert diagnose(_raised(lambda: Sample(count="many"))).kind == "permanent"  # type: ignore[arg-type]


def test_wrapped_errors_are_found_in_the_cause_chain(closed_port: int) -> None:
    def wrapped() -> None:
        try:
            psycopg.connect(f"host=127.0.0.1 port={closed_port} user=x dbname=x connect_timeout=2")
        except psycopg.OperationalError as exc:
            raise RuntimeError("could not refresh the model") from exc

    diagnosis = diagnose(_raised(wrapped))
    assert diagnosis.kind == "transient" and diagnosis.error_class == "psycopg.OperationalError"


def test_failure_is_permanent_and_explained_by_what_it_wraps() -> None:
    def kafka_range() -> None:
        try:
            raise RangeUnavailableError("no progress reading topic for 60s")
        except RangeUnavailableError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc

    diagnosis = diagnose(_raised(kafka_range))
    assert diagnosis.kind == "permanent" and diagnosis.error_class.endswith("RangeUnavailableError")
    # The same error raised because the broker went down (confluent-kafka, as the ingest reads ranges):
    # the cause decides, so the run-failure sensor re-executes it.
    assert diagnose(_raised(_range_unreadable_because_broker_is_down)).kind == "transient"
    plain = diagnose(Failure(description="reader accounted for 3 of 4 rows"))
    assert plain.kind == "permanent" and "3 of 4 rows" in plain.explanation


def _range_unreadable_because_broker_is_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "t", "socket.timeout.ms": 1000, "log_level": 0}
    )
    try:
        try:
            consumer.get_watermark_offsets(confluent_kafka.TopicPartition("t", 0), timeout=1, cached=False)
        except confluent_kafka.KafkaException as exc:
            try:
                raise RangeUnavailableError(f"t[0] cannot be read: {exc}") from exc
            except RangeUnavailableError as range_exc:
                raise Failure(description=str(range_exc), allow_retries=False) from range_exc
    finally:
        consumer.close()


def test_confluent_kafka_broker_down_is_transient() -> None:
    exc = _raised(_range_unreadable_because_broker_is_down)
    root = exc.__cause__.__cause__  # type: ignore[union-attr]
    assert isinstance(root, confluent_kafka.KafkaException)
    diagnosis = diagnose(root)
    assert diagnosis.kind == "transient" and diagnosis.error_class.endswith("KafkaException"), diagnosis
    auth = confluent_kafka.KafkaException(
        confluent_kafka.KafkaError(confluent_kafka.KafkaError._AUTHENTICATION)
    )
    assert diagnose(auth).kind == "permanent"


def test_unknown_errors_and_missing_errors() -> None:
    assert diagnose(RuntimeError("something odd")).kind == "unknown"
    assert diagnose(None).kind == "unknown"


# ------------------------------------------------------------------------------------------------
# The sensor reads errors back from the event log: the verdict must be the same.


def _failing_asset(name: str, exc: BaseException):  # noqa: ANN202 - a Dagster asset definition
    @asset(name=name)
    def _asset() -> None:
        raise exc

    return _asset


def test_serialized_errors_get_the_same_verdict_as_live_ones(closed_port: int, locked_duckdb: Path) -> None:
    live: dict[str, BaseException] = {
        **TRANSIENT_INSTANCES,
        **PERMANENT_INSTANCES,
        "unknown": RuntimeError("something odd"),
        "range unreadable, broker down": _raised(_range_unreadable_because_broker_is_down),
        "refused": _raised(
            lambda: WarehouseResource(url=f"postgresql+psycopg://x:y@127.0.0.1:{closed_port}/x").scalar(
                "SELECT 1"
            )
        ),
        "locked": _raised(
            lambda: WarehouseResource(url=f"duckdb:///{locked_duckdb}", lock_timeout_s=0).scalar("SELECT 1")
        ),
    }
    names = {f"case_{i}": name for i, name in enumerate(live)}
    assets = [_failing_asset(step, live[name]) for step, name in names.items()]
    with DagsterInstance.ephemeral() as instance:
        result = materialize(assets, instance=instance, raise_on_error=False)
    failures = {
        event.step_key: event.event_specific_data.error
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_FAILURE
    }
    assert set(failures) == set(names)
    for step, name in names.items():
        expected, stored = diagnose(live[name]), diagnose(failures[step])
        assert (stored.kind, stored.error_class) == (expected.kind, expected.error_class), name
    assert "DagsterExecutionStepExecutionError" not in error_summary(failures["case_0"])
    dispose_engines()


# ------------------------------------------------------------------------------------------------
# Fail fast


class _Probe(Config):
    fail_with: str = "permanent"


def test_fail_fast_keeps_the_signature_and_turns_permanent_errors_into_failures() -> None:
    @asset
    @fail_fast_on_permanent_errors
    def probe(context: AssetExecutionContext, config: _Probe) -> Iterator[MaterializeResult]:
        """Docstring kept."""
        if config.fail_with == "permanent":
            raise psycopg.errors.UndefinedTable('relation "nope" does not exist')
        if config.fail_with == "transient":
            raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")
        yield MaterializeResult(metadata={"run": context.run.run_id})

    assert probe.op.description == "Docstring kept."
    with DagsterInstance.ephemeral() as instance:
        ok = materialize(
            [probe], instance=instance, run_config={"ops": {"probe": {"config": {"fail_with": "no"}}}}
        )
        assert ok.success
        failed = materialize(
            [probe], instance=instance, raise_on_error=False, run_config={"ops": {"probe": {"config": {}}}}
        )
        transient = materialize(
            [probe],
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"probe": {"config": {"fail_with": "transient"}}}},
        )
    step_failure = next(e for e in failed.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    user = step_failure.event_specific_data.user_failure_data
    assert user is not None and "Permanent error, not retried" in user.description
    assert "psycopg.errors.UndefinedTable" in user.description
    assert user.metadata["diagnosis"].value == "permanent"
    step_failure = next(e for e in transient.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert step_failure.event_specific_data.user_failure_data is None  # left to the retry policy
    assert step_failure.event_specific_data.error.cause.cls_name == "AdminShutdown"


def test_context_manager_passes_transient_errors_and_failures_through() -> None:
    with pytest.raises(psycopg.errors.AdminShutdown), permanent_errors_fail_fast():
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    with pytest.raises(Failure) as caught, permanent_errors_fail_fast():
        raise Failure(description="as is")
    assert caught.value.description == "as is"
    with pytest.raises(Failure) as caught, permanent_errors_fail_fast():
        raise UnreadableFileError("empty file")
    assert "UnreadableFileError" in (caught.value.description or "")
