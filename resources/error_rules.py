"""The rule table of :mod:`resources.error_diagnosis`: which errors are transient or permanent, and why.

Kept apart from the matching engine so that teaching the platform a new error is one entry here: a
class name, a message pattern, an HTTP status or the Kafka client's own retriable flag, with the
verdict and the explanation an operator reads in the incident.
"""

import re
from dataclasses import dataclass
from typing import Literal

ErrorKind = Literal["transient", "permanent", "unknown"]


@dataclass(frozen=True)
class ErrorLink:
    """One error of a cause chain, reduced to what the rules look at."""

    names: frozenset[str]  # bare and qualified names of the class (and its bases, when live)
    qualified: str
    message: str
    status: int | None
    retriable: bool | None  # kafka-python's own flag, when the live exception has it


@dataclass(frozen=True)
class Rule:
    """Matches an error by class name, message pattern, HTTP status or kafka-python's flag."""

    kind: ErrorKind
    explanation: str
    names: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None
    statuses: frozenset[int] = frozenset()
    kafka_retriable: bool = False

    def matches(self, link: ErrorLink) -> bool:
        return (
            bool(self.names & link.names)
            or bool(self.pattern and self.pattern.search(link.message))
            or (link.status is not None and link.status in self.statuses)
            or (self.kafka_retriable and link.retriable is True)
        )


def rule(
    kind: ErrorKind,
    explanation: str,
    names: str = "",
    pattern: str | None = None,
    statuses: tuple[int, ...] = (),
    kafka_retriable: bool = False,
) -> Rule:
    """A rule in the table's compact spelling: space-separated class names, a case-blind regex."""
    return Rule(
        kind=kind,
        explanation=explanation,
        names=frozenset(names.split()),
        pattern=re.compile(pattern, re.IGNORECASE) if pattern else None,
        statuses=frozenset(statuses),
        kafka_retriable=kafka_retriable,
    )


# Deliberate verdicts of the platform's own code: never second-guessed.
DELIBERATE_RULES = (
    rule(
        "permanent",
        "the file cannot be parsed at all; it was quarantined: fix or replace the file and drop it again",
        names="UnreadableFileError",
    ),
    rule(
        "permanent",
        "the requested Kafka offsets cannot be read (beyond the log end or expired); the offsets "
        "sensor plans ranges again from the ledger",
        names="RangeUnavailableError",
    ),
)

# Ordered: credentials and missing databases first (psycopg reports them as connection errors).
RULES = (
    rule(
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
    rule(
        "permanent",
        "the database named in the connection URL does not exist: fix the URL or create it",
        names="InvalidCatalogName",
        pattern=r"database \"[^\"]*\" does not exist",
    ),
    rule(
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
    rule(
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
    rule(
        "transient",
        "a host name did not resolve: a restarting container loses its DNS entry for a while "
        "(if this repeats, check the host in the connection settings)",
        names="gaierror",
        pattern=(
            r"could not translate host name|name or service not known|"
            r"temporary failure in name resolution"
        ),
    ),
    rule(
        "transient",
        "the DuckDB warehouse file is locked by another process or a concurrent transaction "
        "conflicted; the next attempt gets its turn",
        pattern=r"could not set lock|conflicting lock|database is locked|write-write conflict|"
        r"conflict on tuple|could not serialize access|deadlock detected|lock not available",
        names="SerializationFailure DeadlockDetected LockNotAvailable",
    ),
    rule(
        "transient",
        "a statement or query exceeded its time limit while the server was busy",
        names="QueryCanceled ExecutionTimeout WTimeoutError WaitQueueTimeoutError",
    ),
    rule(
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
    rule(
        "transient",
        "MongoDB is unreachable or electing a primary (server selection timed out, connection dropped)",
        names="AutoReconnect NotPrimaryError ServerSelectionTimeoutError NetworkTimeout CursorNotFound",
    ),
    rule(
        "transient",
        "Kafka reported a retriable error (broker restart, leader election or timeout)",
        kafka_retriable=True,
    ),
    rule(
        "transient",
        "the search cluster is overloaded or unavailable (HTTP 429/502/503/504, rejected "
        "execution): it recovers once load drops or the node is back",
        pattern=r"es_rejected_execution_exception|too_many_requests|circuit_breaking_exception|"
        r"no_shard_available_action_exception|cluster_block_exception.*(retry|too_many)",
        statuses=(429, 502, 503, 504),
    ),
    rule(
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
    rule(
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
    rule(
        "permanent",
        "the search engine rejected the request (bad mapping or query, missing index, "
        "conflict): fix the index definition or the documents",
        names="RequestError BadRequestError NotFoundError ConflictError UnsupportedProductError",
        statuses=(400, 404, 405, 409, 413),
    ),
    rule(
        "permanent",
        "the Kafka request is invalid for this topic or broker (configuration, topic name or message size)",
        names=(
            "KafkaConfigurationError InvalidTopicError RecordTooLargeError MessageSizeTooLargeError "
            "UnsupportedVersionError IncompatibleBrokerVersion"
        ),
    ),
    rule(
        "permanent",
        "MongoDB refused the operation (invalid name, operation or query)",
        names="OperationFailure InvalidName InvalidOperation CollectionInvalid",
    ),
    rule(
        "permanent",
        "invalid configuration or settings (connection URL, run config, environment variable): "
        "fix the setting and launch again",
        names=(
            "DagsterInvalidConfigError DagsterInvalidDefinitionError DagsterInvalidInvocationError "
            "DagsterInvariantViolationError DagsterTypeCheckDidNotPass CheckError ValidationError "
            "ConfigurationError InvalidURI ArgumentError NoSuchModuleError ImproperlyConfigured"
        ),
    ),
    rule(
        "permanent",
        "the content of a file cannot be parsed (malformed CSV, corrupt compression, invalid data): "
        "the same bytes fail the same way; fix or replace the file",
        names="_csv.Error zlib.error gzip.BadGzipFile pyarrow.lib.ArrowInvalid",
    ),
    rule(
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
