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
chain), so the step and the sensor reach the same verdict. The rules themselves, tried in order, are
the table in :mod:`resources.error_rules`.
"""

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from dagster import Backoff, Failure, Jitter, MetadataValue, RetryPolicy

from resources.error_rules import DELIBERATE_RULES, RULES, ErrorKind, ErrorLink, Rule

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


def _live_chain(exc: BaseException) -> list[ErrorLink]:
    links: list[ErrorLink] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(links) < 20:
        seen.add(id(current))
        cls = type(current)
        links.append(
            ErrorLink(
                names=frozenset(_class_names(cls)),
                qualified=f"{cls.__module__}.{cls.__qualname__}".removeprefix("builtins."),
                message=str(current),
                status=_status_of(current),
                retriable=_kafka_retriable(current),
            )
        )
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return links


def _serialized_chain(info: ErrorInfoLike) -> list[ErrorLink]:
    links: list[ErrorLink] = []
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
            ErrorLink(
                names=frozenset(names),
                qualified=qualified or "unknown",
                message=message.strip(),
                status=int(status_match.group(1)) if status_match else None,
                retriable=True if cls_name in _kafka_retriable_names() else None,
            )
        )
        current = getattr(current, "cause", None) or getattr(current, "context", None)
    return links


def _match(rules: tuple[Rule, ...], links: list[ErrorLink]) -> tuple[Diagnosis, int] | None:
    """The first rule matching any error of the chain, named after the innermost error it matches."""
    for rule in rules:
        matched = [i for i, link in enumerate(links) if rule.matches(link)]
        if matched:
            return Diagnosis(rule.kind, links[matched[-1]].qualified, rule.explanation), matched[-1]
    return None


def _classify(links: list[ErrorLink]) -> Diagnosis | None:
    deliberate = _match(DELIBERATE_RULES, links)
    if deliberate is not None:
        # e.g. RangeUnavailableError raised because the broker went down: the cause decides.
        beneath = _match(RULES, links[deliberate[1] + 1 :])
        return beneath[0] if beneath is not None and beneath[0].transient else deliberate[0]
    found = _match(RULES, links)
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
