"""JSON log lines for processes outside Dagster runs (the read API, CLIs), without importing Dagster.

The JSON side (extras, exceptions, stacks, encoding odd values) is python-json-logger's
(``pythonjsonlogger``); this module adds the platform's core fields and their order. Every line has
``ts`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``, then ``run_id``, ``job``, ``step_key``
and ``asset_key`` (null outside a run); fields passed with ``extra={...}`` and fields bound with
:func:`log_context` are added as they are, and uvicorn's access lines get an ``http`` object.

``orchestration/json_logs.py`` subclasses :class:`JsonFormatter` to fill the run fields from the
Dagster context; the read API uses this module alone (:func:`uvicorn_log_config`), so serving
answers never loads Dagster. With ``AFLUENTE_LOG_FILE`` set, :func:`configure_logging` and
:func:`uvicorn_log_config` also append every line, as JSON, to that file, which the system_logs
monitor (``assets/monitor``) indexes.
"""

import datetime as dt
import logging
import logging.handlers
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as JsonLinesFormatter

# Top-level names of the platform's python loggers (modules log with logging.getLogger(__name__)).
PLATFORM_LOGGERS: tuple[str, ...] = (
    "afluente",
    "api",
    "assets",
    "dbt_like_sql",
    "generators",
    "io_managers",
    "orchestration",
    "resources",
    "sensors",
    "services",
)

# Record attributes never dumped as extras: the standard ones, the ones Dagster attaches (read by
# orchestration/json_logs.py) and uvicorn's ANSI-colored copy of the message.
_NOT_EXTRAS = (
    *RESERVED_ATTRS,
    "taskName",
    "dagster_meta",
    "dagster_event",
    "dagster_event_batch_metadata",
    "color_message",
)
_CORE_FIELDS = ("ts", "level", "logger", "message", "run_id", "job", "step_key", "asset_key")

_bound: ContextVar[Mapping[str, Any] | None] = ContextVar("afluente_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged in this context (thread / task), e.g. ``run_id=...``."""
    token = _bound.set({**(_bound.get() or {}), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


class JsonFormatter(JsonLinesFormatter):
    """python-json-logger's formatter with the platform's fields: core fields first and always
    present (null when unknown), extras after them (``extra_<name>`` when a name is taken), None
    dropped. Subclasses add a framework's context in :meth:`add_context`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reserved_attrs", _NOT_EXTRAS)
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def add_context(self, record: logging.LogRecord, out: dict[str, Any]) -> None:
        """Fill run fields (``run_id``, ``job``, ...) from the surrounding framework: none here."""

    def context_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The fields of one record that are not extras: core fields, context, bound fields."""
        out: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage() if not isinstance(record.msg, dict) else "",
        }
        self.add_context(record, out)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            out["http"] = {
                "client": client,
                "method": method,
                "path": path,
                "version": version,
                "status": status,
            }
        for key, value in (_bound.get() or {}).items():
            if out.get(key) is None:
                out[key] = value
        return out

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        extras: dict[str, Any] = {}
        super().add_fields(extras, record, message_dict)  # extras, exc_info, stack_info
        extras.pop("message", None)  # the library copies the message in; ours is a core field
        out = self.context_fields(record)
        for key, value in extras.items():
            out[key if key not in out else f"extra_{key}"] = value
        log_data.update({name: out.get(name) for name in _CORE_FIELDS})
        log_data.update({k: v for k, v in out.items() if k not in log_data and v is not None})


def _text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def log_file() -> str | None:
    """``AFLUENTE_LOG_FILE``: a file the JSON lines are also appended to (the system_logs monitor tails
    it), its folder created; None when unset."""
    from resources.settings import LoggingSettings

    path = LoggingSettings.current().file.strip()
    if not path:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # uvicorn's dictConfig opens it as is
    return path


def _file_handler(path: str, formatter: type[JsonFormatter]) -> logging.Handler:
    # Appends (O_APPEND: whole lines from several processes do not interleave); WatchedFileHandler
    # reopens the file after a rotation renamed it, so the new lines go to the new file.
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter())
    handler.set_name("afluente")
    return handler


def configure_logging(
    level: str = "INFO",
    fmt: str = "json",
    stream: IO[str] | None = None,
    file: str | None = None,
    formatter: type[JsonFormatter] = JsonFormatter,
) -> logging.Handler:
    """One stderr handler (JSON, or ``fmt="text"``) on every platform logger; idempotent.

    For processes outside runs (the read API, CLIs). Inside runs Dagster owns the platform loggers
    (``python_logs.managed_python_loggers`` in ``dagster.yaml``), so run workers do not call this.
    ``file`` (default: :func:`log_file`) also gets every line, always as JSON. Returns the stream
    handler (tests remove both with :func:`unconfigure_logging`).
    """
    unconfigure_logging()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter() if fmt == "json" else _text_formatter())
    handler.set_name("afluente")
    file = file or log_file()
    handlers = [handler, _file_handler(file, formatter)] if file else [handler]
    for name in PLATFORM_LOGGERS:
        platform_logger = logging.getLogger(name)
        for each in handlers:
            platform_logger.addHandler(each)
        platform_logger.setLevel(level.upper())
    return handler


def unconfigure_logging() -> None:
    """Remove the handlers :func:`configure_logging` installed (no-op when there is none)."""
    closed: set[int] = set()
    for name in PLATFORM_LOGGERS:
        platform_logger = logging.getLogger(name)
        for handler in [h for h in platform_logger.handlers if h.get_name() == "afluente"]:
            platform_logger.removeHandler(handler)
            if isinstance(handler, logging.FileHandler) and id(handler) not in closed:
                closed.add(id(handler))
                handler.close()


def uvicorn_log_config(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``: uvicorn's own loggers
    (server and access log) and the platform loggers all write one format to stderr (and JSON to
    ``AFLUENTE_LOG_FILE`` when set)."""
    level = level.upper()
    file = log_file()
    handler_names = ["default", "file"] if file else ["default"]
    own = {"handlers": handler_names, "level": level, "propagate": False}
    file_handlers = (
        {"file": {"class": "logging.handlers.WatchedFileHandler", "formatter": "json", "filename": file}}
        if file
        else {}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JsonFormatter"},
            "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json" if fmt == "json" else "text",
                "stream": "ext://sys.stderr",
            },
            **file_handlers,
        },
        "loggers": {
            "uvicorn": dict(own),
            "uvicorn.error": {"level": level},
            "uvicorn.access": dict(own),
            **{name: dict(own) for name in PLATFORM_LOGGERS},
        },
    }
