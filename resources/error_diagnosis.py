"""Is an error worth retrying? Transient vs permanent diagnosis shared by assets and the failure sensor.

A broker, database or search node that restarts produces errors that go away by themselves
(connection refused, timeouts, "the database system is shutting down", a DuckDB file lock held by
another process): those are *transient*, retried by :data:`NETWORK_RETRY_POLICY` inside the run and
re-executed by the run-failure sensor after it. A wrong SQL statement, bad credentials, an
unreadable file or invalid settings fail the same way every time: those are *permanent*, and
:func:`fail_fast_on_permanent_errors` turns them into ``dagster.Failure(allow_retries=False)`` so the
step fails at once with the diagnosis instead of sleeping through retries. Anything else is
*unknown*: the retry policy still retries it (cheap insurance), the sensor does not re-execute it.

:func:`diagnose` reads live exceptions (class hierarchy, ``__cause__``/``__context__`` chain, HTTP
status) and the serialized errors Dagster stores in the event log (class name, message and cause
chain), so the step and the sensor reach the same verdict.
"""

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from dagster import Backoff, Failure, Jitter, MetadataValue, RetryPolicy

ErrorKind = Literal["transient", "permanent", "unknown"]

# 4 retries, waiting 2, 6, 14 and 30 s (Dagster's exponential backoff, (2^n - 1) x 2 s), each ± 2 s
# of jitter so parallel steps do not reconnect in lockstep: about a minute of outage (a database or
# broker restart) is ridden out inside the step; longer ones are left to the run-failure sensor.
NETWORK_RETRY_POLICY = RetryPolicy(
    max_retries=4, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)

MAX_MESSAGE_CHARS = 2000


class ErrorInfoLike(Protocol):
    """What Dagster stores for an error in the event log (``SerializableErrorInfo``)."""

    message: str
    cls_name: str | None
    cause: Any
    context: Any


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one error: its kind, the class it rests on, and what to do about it."""

    kind: ErrorKind
    error_class: str
    explanation: str

    @property
    def transient(self) -> bool:
        return self.kind == "transient"

    @property
    def permanent(self) -> bool:
        return self.kind == "permanent"


@dataclass(frozen=True)
class _Link:
    """One error of a cause chain, reduced to what the rules look at."""

    names: frozenset[str]  # bare and qualified names of the class (and its bases, when live)
    qualified: str
    message: str
    status: int | None
    retriable: bool | None  # kafka-python's own flag, when the live exception has it


@dataclass(frozen=True)
class _Rule:
    """Matches an error by class name, message pattern, HTTP status or kafka-python's flag."""

    kind: ErrorKind
    explanation: str
    names: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None
    statuses: frozenset[int] = frozenset()
    kafka_retriable: bool = False

    def matches(self, link: _Link) -> bool:
        return (
            bool(self.names & link.names)
            or bool(self.pattern and self.pattern.search(link.message))
            or (link.status is not None and link.status in self.statuses)
            or (self.kafka_retriable and link.retriable is True)
        )


def _rule(
    kind: ErrorKind,
    explanation: str,
    names: str = "",
    pattern: str | None = None,
    statuses: tuple[int, ...] = (),
    kafka_retriable: bool = False,
) -> _Rule:
    return _Rule(
        kind=kind,
        explanation=explanation,
        names=frozenset(names.split()),
        pattern=re.compile(pattern, re.IGNORECASE) if pattern else None,
        statuses=frozenset(statuses),
        kafka_retriable=kafka_retriable,
    )


# Deliberate verdicts of the platform's own code: never second-guessed.
_DELIBERATE = (
    _rule(
        "permanent",
        "the file cannot be parsed at all; it was quarantined: fix or replace the file and drop it again",
        names="UnreadableFileError",
    ),
    _rule(
        "permanent",
        "the requested Kafka offsets cannot be read (beyond the log end or expired); the offsets "
        "sensor plans ranges again from the ledger",
        names="RangeUnavailableError",
    ),
)

# Ordered: credentials and missing databases first (psycopg reports them as connection errors).
_RULES = (
    _rule(
        "permanent",
        "authentication or authorization failed: check the credentials and grants in the "
        "connection settings; retrying cannot help",
        names=(
            "InvalidPassword InvalidAuthorizationSpecification InsufficientPrivilege "
            "AuthenticationException AuthorizationException SaslAuthenticationFailedError "
            "TopicAuthorizationFailedError GroupAuthorizationFailedError ClusterAuthorizationFailedError"
        ),
        pattern=(
            r"password authentication failed|no pg_hba\.conf entry|authentication failed|"
            r"not authorized|unauthorized|permission denied|role \"[^\"]*\" does not exist|"
            r"code=_?(AUTHENTICATION|SASL_AUTHENTICATION_FAILED|\w+_AUTHORIZATION_FAILED)\b"
        ),
        statuses=(401, 403),
    ),
    _rule(
        "permanent",
        "the database named in the connection URL does not exist: fix the URL or create it",
        names="InvalidCatalogName",
        pattern=r"database \"[^\"]*\" does not exist",
    ),
    _rule(
        "transient",
        "the database server is restarting, shutting down or out of connection slots; it "
        "accepts connections again shortly",
        names="AdminShutdown CrashShutdown CannotConnectNow TooManyConnections",
        pattern=(
            r"terminating connection due to administrator command|the database system is "
            r"(shutting down|starting up|in recovery mode|not yet accepting connections)|"
            r"too many (connections|clients)|server closed the connection unexpectedly|"
            r"SSL SYSCALL error|consuming input failed|could not receive data from server|"
            r"no connection to the server|the connection is (closed|lost)"
        ),
    ),
    _rule(
        "transient",
        "the connection was refused, reset or timed out: the service is down, restarting or "
        "overloaded, and usually answers again within minutes",
        names=(
            "ConnectionRefusedError ConnectionResetError ConnectionAbortedError BrokenPipeError "
            "TimeoutError ConnectionError ConnectionTimeout ConnectionException ConnectionFailure "
            "SqlclientUnableToEstablishSqlconnection DisconnectionError NewConnectionError "
            "ReadTimeoutError ConnectTimeoutError ConnectTimeout ReadTimeout ProtocolError"
        ),
        pattern=(
            r"connection refused|connection reset|connection aborted|broken pipe|timed out|"
            r"timeout expired|could not connect|no route to host|network is unreachable|"
            r"temporarily unavailable"
        ),
    ),
    _rule(
        "transient",
        "a host name did not resolve: a restarting container loses its DNS entry for a while "
        "(if this repeats, check the host in the connection settings)",
        names="gaierror",
        pattern=(
            r"could not translate host name|name or service not known|"
            r"temporary failure in name resolution"
        ),
    ),
    _rule(
        "transient",
        "the DuckDB warehouse file is locked by another process or a concurrent transaction "
        "conflicted; the next attempt gets its turn",
        pattern=r"could not set lock|conflicting lock|database is locked|write-write conflict|"
        r"conflict on tuple|could not serialize access|deadlock detected|lock not available",
        names="SerializationFailure DeadlockDetected LockNotAvailable",
    ),
    _rule(
        "transient",
        "a statement or query exceeded its time limit while the server was busy",
        names="QueryCanceled ExecutionTimeout WTimeoutError WaitQueueTimeoutError",
    ),
    _rule(
        "transient",
        "the Kafka broker is unreachable or has no leader for a partition yet (broker restart "
        "or leader election)",
        names=(
            "NoBrokersAvailable KafkaTimeoutError KafkaConnectionError NodeNotReadyError "
            "RequestTimedOutError NotLeaderForPartitionError LeaderNotAvailableError "
            "BrokerNotAvailableError NotEnoughReplicasError CoordinatorNotAvailableError "
            "NotCoordinatorError NetworkExceptionError MetadataEmptyBrokerList KafkaStorageError"
        ),
        # confluent-kafka (librdkafka) reports "KafkaError{code=_ALL_BROKERS_DOWN,...}"
        pattern=(
            r"code=_?(ALL_BROKERS_DOWN|TRANSPORT|TIMED_OUT|MSG_TIMED_OUT|TIMED_OUT_QUEUE|RESOLVE|"
            r"WAIT_COORD|NOT_LEADER_FOR_PARTITION|LEADER_NOT_AVAILABLE|REQUEST_TIMED_OUT|"
            r"NETWORK_EXCEPTION|BROKER_NOT_AVAILABLE|REPLICA_NOT_AVAILABLE|NOT_ENOUGH_REPLICAS|"
            r"COORDINATOR_NOT_AVAILABLE|NOT_COORDINATOR|COORDINATOR_LOAD_IN_PROGRESS)\b"
        ),
    ),
    _rule(
        "transient",
        "MongoDB is unreachable or electing a primary (server selection timed out, connection dropped)",
        names="AutoReconnect NotPrimaryError ServerSelectionTimeoutError NetworkTimeout CursorNotFound",
    ),
    _rule(
        "transient",
        "Kafka reported a retriable error (broker restart, leader election or timeout)",
        kafka_retriable=True,
    ),
    _rule(
        "transient",
        "the search cluster is overloaded or unavailable (HTTP 429/502/503/504, rejected "
        "execution): it recovers once load drops or the node is back",
        pattern=r"es_rejected_execution_exception|too_many_requests|circuit_breaking_exception|"
        r"no_shard_available_action_exception|cluster_block_exception.*(retry|too_many)",
        statuses=(429, 502, 503, 504),
    ),
    _rule(
        "permanent",
        "the SQL is invalid for this warehouse (syntax error, missing table or column, type "
        "mismatch): fix the model or the schema; retrying cannot help",
        names=(
            "SyntaxError UndefinedTable UndefinedColumn UndefinedFunction UndefinedObject "
            "DuplicateTable DuplicateColumn DatatypeMismatch AmbiguousColumn GroupingError "
            "WrongObjectType InvalidSchemaName InvalidTextRepresentation ProgrammingError "
            "ParserException CatalogException BinderException SyntaxException NotSupportedError "
            "NotImplementedException"
        ),
        pattern=r"syntax error|parser error|catalog error|binder error|does not exist|no such table",
    ),
    _rule(
        "permanent",
        "the data violates a constraint or cannot be converted: fix the input or the model",
        names=(
            "DataError IntegrityError NotNullViolation UniqueViolation ForeignKeyViolation "
            "CheckViolation NumericValueOutOfRange DivisionByZero ConversionException "
            "ConstraintException InvalidInputException TypeMismatchException OutOfRangeException "
            "DuplicateKeyError DocumentTooLarge InvalidDocument BulkWriteError WriteError"
        ),
        pattern=r"violates .* constraint|invalid input syntax|conversion error|constraint error",
    ),
    _rule(
        "permanent",
        "the search engine rejected the request (bad mapping or query, missing index, "
        "conflict): fix the index definition or the documents",
        names="RequestError BadRequestError NotFoundError ConflictError UnsupportedProductError",
        statuses=(400, 404, 405, 409, 413),
    ),
    _rule(
        "permanent",
        "the Kafka request is invalid for this topic or broker (configuration, topic name or message size)",
        names=(
            "KafkaConfigurationError InvalidTopicError RecordTooLargeError MessageSizeTooLargeError "
            "UnsupportedVersionError IncompatibleBrokerVersion"
        ),
    ),
    _rule(
        "permanent",
        "MongoDB refused the operation (invalid name, operation or query)",
        names="OperationFailure InvalidName InvalidOperation CollectionInvalid",
    ),
    _rule(
        "permanent",
        "invalid configuration or settings (connection URL, run config, environment variable): "
        "fix the setting and launch again",
        names=(
            "DagsterInvalidConfigError DagsterInvalidDefinitionError DagsterInvalidInvocationError "
            "DagsterInvariantViolationError DagsterTypeCheckDidNotPass CheckError ValidationError "
            "ConfigurationError InvalidURI ArgumentError NoSuchModuleError ImproperlyConfigured"
        ),
    ),
    _rule(
        "permanent",
        "the content of a file cannot be parsed (malformed CSV, corrupt compression, invalid data): "
        "the same bytes fail the same way; fix or replace the file",
        names="_csv.Error zlib.error gzip.BadGzipFile pyarrow.lib.ArrowInvalid",
    ),
    _rule(
        "permanent",
        "a bug or unexpected data in the asset code (the same input fails the same way): read "
        "the stack trace, fix, and materialize again",
        names=(
            "ValueError TypeError KeyError IndexError AttributeError NameError ImportError "
            "ModuleNotFoundError NotImplementedError ZeroDivisionError AssertionError "
            "UnicodeError JSONDecodeError FileNotFoundError IsADirectoryError NotADirectoryError "
            "PermissionError RecursionError"
        ),
    ),
)

_FAILURE_NAMES = frozenset({"Failure", "dagster.Failure", "dagster._core.definitions.events.Failure"})
# Dagster stores "module.Class: message" as the message of a serialized error.
_QUALIFIED_PREFIX = re.compile(r"^([A-Za-z_][\w.]*): ")
_STATUS_IN_MESSAGE = re.compile(r"^\w*\((\d{3}),")


@functools.cache
def _kafka_retriable_names() -> frozenset[str]:
    """Names of kafka-python's retriable error classes (serialized errors carry only the name)."""
    try:
        import kafka.errors as kafka_errors
    except ImportError:  # pragma: no cover - kafka-python is a dependency
        return frozenset()
    return frozenset(
        name
        for name, cls in vars(kafka_errors).items()
        if isinstance(cls, type)
        and issubclass(cls, kafka_errors.KafkaError)
        and getattr(cls, "retriable", False)  # class attribute of every KafkaError (untyped library)
    )


def _class_names(cls: type) -> set[str]:
    names: set[str] = set()
    for base in cls.__mro__:
        if base in (BaseException, Exception, object):
            continue
        names.add(base.__name__)
        names.add(f"{base.__module__}.{base.__qualname__}")
    return names


def _status_of(exc: BaseException) -> int | None:
    """HTTP status of a search-client error (opensearch-py ``status_code``, elasticsearch ``meta``)."""
    for value in (getattr(exc, "status_code", None), getattr(getattr(exc, "meta", None), "status", None)):
        if isinstance(value, int):
            return value
    return None


def _kafka_retriable(exc: BaseException) -> bool | None:
    """The client's own retriable flag: kafka-python's class attribute, confluent-kafka's KafkaError."""
    module = type(exc).__module__
    if module.startswith("kafka."):
        return bool(getattr(exc, "retriable", False))
    if (
        module.startswith(("cimpl", "confluent_kafka"))
        and exc.args
        and callable(getattr(exc.args[0], "retriable", None))
    ):
        return bool(exc.args[0].retriable())
    return None


def _live_chain(exc: BaseException) -> list[_Link]:
    links: list[_Link] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(links) < 20:
        seen.add(id(current))
        cls = type(current)
        links.append(
            _Link(
                names=frozenset(_class_names(cls)),
                qualified=f"{cls.__module__}.{cls.__qualname__}".removeprefix("builtins."),
                message=str(current),
                status=_status_of(current),
                retriable=_kafka_retriable(current),
            )
        )
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return links


def _serialized_chain(info: ErrorInfoLike) -> list[_Link]:
    links: list[_Link] = []
    current: Any = info
    while current is not None and len(links) < 20:
        message = str(getattr(current, "message", "") or "")
        cls_name = str(getattr(current, "cls_name", "") or "")
        qualified = cls_name
        match = _QUALIFIED_PREFIX.match(message)
        if match and match.group(1).rsplit(".", 1)[-1] == cls_name:
            qualified = match.group(1)
            message = message[match.end() :]
        status_match = _STATUS_IN_MESSAGE.match(message.strip())
        names = {cls_name, qualified} - {""}
        links.append(
            _Link(
                names=frozenset(names),
                qualified=qualified or "unknown",
                message=message.strip(),
                status=int(status_match.group(1)) if status_match else None,
                retriable=True if cls_name in _kafka_retriable_names() else None,
            )
        )
        current = getattr(current, "cause", None) or getattr(current, "context", None)
    return links


def _match(rules: tuple[_Rule, ...], links: list[_Link]) -> tuple[Diagnosis, int] | None:
    """The first rule matching any error of the chain, named after the innermost error it matches."""
    for rule in rules:
        matched = [i for i, link in enumerate(links) if rule.matches(link)]
        if matched:
            return Diagnosis(rule.kind, links[matched[-1]].qualified, rule.explanation), matched[-1]
    return None


def _classify(links: list[_Link]) -> Diagnosis | None:
    deliberate = _match(_DELIBERATE, links)
    if deliberate is not None:
        # e.g. RangeUnavailableError raised because the broker went down: the cause decides.
        beneath = _match(_RULES, links[deliberate[1] + 1 :])
        return beneath[0] if beneath is not None and beneath[0].transient else deliberate[0]
    found = _match(_RULES, links)
    return found[0] if found is not None else None


def diagnose(error: BaseException | ErrorInfoLike | None) -> Diagnosis:
    """Classify a live exception or a serialized Dagster error (with its cause chain).

    Rules are tried in priority order over the whole chain (outermost error first), so a driver
    error wrapped by SQLAlchemy or by Dagster is found wherever it sits. A ``dagster.Failure`` that
    wraps a known error takes that error's verdict (the asset may only have wanted to skip in-step
    retries, as the Kafka ingest does); otherwise it is the asset's own verdict: permanent. Likewise
    a ``RangeUnavailableError`` is permanent unless a transient error (broker down) caused it.
    """
    if error is None:
        return Diagnosis("unknown", "unknown", "no error was recorded (the run process may have crashed)")
    links = _live_chain(error) if isinstance(error, BaseException) else _serialized_chain(error)
    failure_at = next((i for i, link in enumerate(links) if link.names & _FAILURE_NAMES), None)
    if failure_at is not None:
        inner = _classify(links[failure_at + 1 :])
        if inner is not None:
            return inner
        description = links[failure_at].message.splitlines()[0] if links[failure_at].message else ""
        return Diagnosis(
            "permanent",
            "dagster.Failure",
            f"the asset code failed the step deliberately (dagster.Failure): {description}"[
                :MAX_MESSAGE_CHARS
            ],
        )
    verdict = _classify(links)
    if verdict is not None:
        return verdict
    root = links[-1]
    return Diagnosis(
        "unknown",
        root.qualified,
        "not a known transient or permanent error: retried by the step's retry policy but not "
        "re-executed automatically; read the stack trace",
    )


# Dagster's own wrappers ("Error occurred while executing op ...") say nothing about the cause.
_DAGSTER_WRAPPER = re.compile(
    r"^dagster(\._core)?\.errors\.|^Dagster\w+ExecutionError$|^DagsterResourceFunctionError$"
)


def error_summary(error: BaseException | ErrorInfoLike | None, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``Class: message`` of each error of the chain, Dagster wrappers left out, within ``limit``."""
    if error is None:
        return ""
    links = _live_chain(error) if isinstance(error, BaseException) else _serialized_chain(error)
    useful = [link for link in links if not _DAGSTER_WRAPPER.search(link.qualified)] or links
    text = "\ncaused by: ".join(f"{link.qualified}: {link.message}".strip() for link in useful)
    return text[:limit]


def failure_for(exc: BaseException, diagnosis: Diagnosis) -> Failure:
    """The ``Failure`` that ends a step at once on a permanent error, with the diagnosis in it."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Failure(
        description=(
            f"Permanent error, not retried ({diagnosis.error_class}): {diagnosis.explanation}. "
            f"Error: {message}"
        )[:MAX_MESSAGE_CHARS],
        metadata={
            "diagnosis": diagnosis.kind,
            "error_class": diagnosis.error_class,
            "explanation": diagnosis.explanation,
            "error_message": MetadataValue.text(str(exc)[:MAX_MESSAGE_CHARS]),
        },
        allow_retries=False,
    )


@contextmanager
def permanent_errors_fail_fast() -> Iterator[None]:
    """Re-raise permanent errors as ``Failure(allow_retries=False)``; others pass untouched."""
    try:
        yield
    except Failure:
        raise
    except Exception as exc:
        diagnosis = diagnose(exc)
        if not diagnosis.permanent:
            raise
        raise failure_for(exc, diagnosis) from exc


F = TypeVar("F", bound=Callable[..., Any])


def fail_fast_on_permanent_errors(fn: F) -> F:
    """Decorate an asset's compute function (under ``@asset``/``@multi_asset``) to fail fast.

    Keeps the signature Dagster inspects (context, config, resources) and the generator nature
    of the function, so it is a one-line addition to any asset.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def _generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with permanent_errors_fail_fast():
                yield from fn(*args, **kwargs)

        return _generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def _function(*args: Any, **kwargs: Any) -> Any:
        with permanent_errors_fail_fast():
            return fn(*args, **kwargs)

    return _function  # type: ignore[return-value]
