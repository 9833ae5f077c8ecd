"""Structured JSON logs: one JSON object per line, carrying the run id and the asset key.

The JSON side (extras, exceptions, stacks, encoding odd values) is python-json-logger's
(``pythonjsonlogger``); this module adds the Dagster context and the field order.

Every line has ``ts`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``; lines written during a
run add ``run_id``, ``job``, ``step_key`` and, when known, ``asset_key`` (the asset of the event, else
of the step: the first one of a step materializing several, all of them in ``asset_keys``),
``partition`` and ``event`` (the Dagster event type). Fields passed with ``extra={...}`` and fields
bound with :func:`log_context` are added as they are.

Where the context comes from, in order:

1. the Dagster metadata Dagster attaches to every record that goes through a run's log manager
   (``context.log`` and the managed python loggers): run id, job, step key, event, run tags;
2. the current Dagster execution context (``OpExecutionContext.get()``) while a step's compute
   function runs: the asset key(s) of the step, also for plain python loggers;
3. fields bound with :func:`log_context` (processes outside runs: API, CLIs, sensors).

Three ways in:

- :class:`JsonFormatter`, a ``logging.Formatter``: the production instance (``dagster.yaml``,
  ``python_logs.dagster_handler_config``) puts it on a stdout handler of every run, so every line
  of every run is JSON whatever the job's loggers;
- :data:`json_logger`, a Dagster ``@logger`` bound in ``Definitions(loggers=...)`` as ``json``,
  for runs that select it (``loggers: {json: {}}`` in the run config / launchpad);
- :func:`configure_logging` and :func:`uvicorn_log_config` for long-running processes outside
  runs (``python -m api``). With ``AFLUENTE_LOG_FILE`` set they also append every line, as JSON,
  to that file, which the system_logs monitor (``assets/monitor``) indexes.
"""

import datetime as dt
import logging
import logging.handlers
import sys
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from dagster import (
    BetaWarning,
    DagsterInvariantViolationError,
    Field,
    InitLoggerContext,
    OpExecutionContext,
    logger,
)
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as JsonLinesFormatter

# The JSON run handler is configured in dagster.yaml (python_logs.dagster_handler_config), which
# Dagster flags as beta on every run; the code location imports this module, so runs stay quiet.
warnings.filterwarnings("ignore", message="Handling yaml-defined logging", category=BetaWarning)

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

# Record attributes never dumped as extras: the standard ones, the ones Dagster attaches (read
# below) and uvicorn's ANSI-colored copy of the message.
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

# (run id, step key) -> asset keys, learned while the step's compute function runs, so lines the
# step writes afterwards (outputs, success) or from other threads carry the asset key too.
_STEP_ASSETS: "OrderedDict[tuple[str, str], list[str]]" = OrderedDict()
_STEP_ASSETS_MAX = 4096


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


def _remember(run_id: str | None, step_key: str | None, keys: list[str]) -> None:
    if not (run_id and step_key and keys):
        return
    _STEP_ASSETS[(run_id, step_key)] = keys
    _STEP_ASSETS.move_to_end((run_id, step_key))
    while len(_STEP_ASSETS) > _STEP_ASSETS_MAX:
        _STEP_ASSETS.popitem(last=False)


def _current_step() -> dict[str, Any]:
    """Run id, job, op and asset keys of the step whose compute function is running, if any."""
    try:
        context = OpExecutionContext.get()
    except DagsterInvariantViolationError:
        return {}
    fields: dict[str, Any] = {}
    try:
        fields["run_id"] = context.run_id
        fields["job"] = context.job_name
        fields["op"] = context.op_def.name
        keys = sorted(key.to_user_string() for key in context.selected_asset_keys)
        if not keys:  # an asset-check-only step: the checked assets
            keys = sorted({key.asset_key.to_user_string() for key in context.selected_asset_check_keys})
        fields["asset_keys"] = keys
        if context.has_partition_key:
            fields["partition"] = context.partition_key
    except Exception:  # an op outside any asset, or a context being torn down: keep what we have
        pass
    return fields


def _event_error(event: Any) -> str | None:
    error = getattr(getattr(event, "event_specific_data", None), "error", None)
    to_string = getattr(error, "to_string", None)
    return to_string() if callable(to_string) else None


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one record that are not extras: core fields, Dagster context, bound fields."""
    out: dict[str, Any] = {
        "ts": _iso(record.created),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage() if not isinstance(record.msg, dict) else "",
    }
    step = _current_step()
    meta = getattr(record, "dagster_meta", None)
    event_asset: str | None = None
    if isinstance(meta, Mapping):
        out["message"] = meta.get("orig_message", out["message"])
        out["run_id"] = meta.get("run_id")
        out["job"] = meta.get("job_name")
        out["step_key"] = meta.get("step_key")
        tags = meta.get("job_tags") or {}
        if tags.get("dagster/partition"):
            out["partition"] = tags["dagster/partition"]
        event = meta.get("dagster_event")
        if event is not None:
            out["event"] = event.event_type_value
            event_key = event.asset_key
            if event_key is not None:
                event_asset = event_key.to_user_string()
            error = _event_error(event)
            if error:
                out["error"] = error
    else:
        out["run_id"] = step.get("run_id")
        out["job"] = step.get("job")
        out["step_key"] = step.get("op")
    step_assets: list[str] = []
    if step.get("run_id") == out.get("run_id") and step.get("asset_keys"):
        step_assets = step["asset_keys"]
        _remember(out.get("run_id"), out.get("step_key"), step_assets)
        if "partition" in step:
            out.setdefault("partition", step["partition"])
    elif out.get("run_id") and out.get("step_key"):
        step_assets = _STEP_ASSETS.get((out["run_id"], out["step_key"]), [])
    # The asset the line is about: the event's own asset, else the step's (the first of a step
    # materializing several, all of them in asset_keys).
    out["asset_key"] = event_asset or (step_assets[0] if step_assets else None)
    if len(step_assets) > 1:
        out["asset_keys"] = step_assets

    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, version, status = record.args
        out["http"] = {"client": client, "method": method, "path": path, "version": version, "status": status}

    for key, value in (_bound.get() or {}).items():
        if out.get(key) is None:
            out[key] = value
    return out


class JsonFormatter(JsonLinesFormatter):
    """python-json-logger's formatter with the Dagster context: core fields first and always
    present (null when unknown), extras after them (``extra_<name>`` when a name is taken), None
    dropped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reserved_attrs", _NOT_EXTRAS)
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        extras: dict[str, Any] = {}
        super().add_fields(extras, record, message_dict)  # extras, exc_info, stack_info
        out = context_fields(record)
        for key, value in extras.items():
            out[key if key not in out else f"extra_{key}"] = value
        log_data.update({name: out.get(name) for name in _CORE_FIELDS})
        log_data.update({k: v for k, v in out.items() if k not in log_data and v is not None})


@logger(
    config_schema={
        "log_level": Field(str, is_required=False, default_value="INFO", description="Threshold"),
        "name": Field(str, is_required=False, default_value="dagster", description="Logger name"),
        "stream": Field(str, is_required=False, default_value="stdout", description="stdout or stderr"),
    },
    description="One JSON object per line: ts, level, run_id, job, step_key, asset_key, message, extras",
)
def json_logger(init_context: InitLoggerContext) -> logging.Logger:
    """The platform's JSON ``@logger`` (``loggers: {json: {}}`` in a run config selects it)."""
    config = init_context.logger_config
    log = logging.Logger(config["name"], level=logging.getLevelName(str(config["log_level"]).upper()))
    handler = logging.StreamHandler(sys.stderr if config["stream"] == "stderr" else sys.stdout)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    return log


def _text_formatter() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def log_file() -> str | None:
    """``AFLUENTE_LOG_FILE``: a file the JSON lines are also appended to (the system_logs monitor tails
    it), its folder created; None when unset."""
    from resources.settings import setting

    path = setting("AFLUENTE_LOG_FILE").strip()
    if not path:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # uvicorn's dictConfig opens it as is
    return path


def _file_handler(path: str) -> logging.Handler:
    # Appends (O_APPEND: whole lines from several processes do not interleave); WatchedFileHandler
    # reopens the file after a rotation renamed it, so the new lines go to the new file.
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    handler.set_name("afluente")
    return handler


def configure_logging(
    level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None, file: str | None = None
) -> logging.Handler:
    """One stderr handler (JSON, or ``fmt="text"``) on every platform logger; idempotent.

    For processes outside runs (the read API, CLIs). Inside runs Dagster owns the platform loggers
    (``python_logs.managed_python_loggers`` in ``dagster.yaml``), so run workers do not call this.
    ``file`` (default: :func:`log_file`) also gets every line, always as JSON. Returns the stream
    handler (tests remove both with :func:`unconfigure_logging`).
    """
    unconfigure_logging()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else _text_formatter())
    handler.set_name("afluente")
    file = file or log_file()
    handlers = [handler, _file_handler(file)] if file else [handler]
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
