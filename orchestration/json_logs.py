"""Structured JSON logs of Dagster runs: one JSON object per line, carrying the run id and the asset key.

The line format (core fields, extras, :func:`log_context`, ``AFLUENTE_LOG_FILE``) is
:mod:`resources.json_logging`'s, which the read API uses without Dagster; this module adds the
Dagster context. Lines written during a run carry ``run_id``, ``job``, ``step_key`` and, when known,
``asset_key`` (the asset of the event, else of the step: the first one of a step materializing
several, all of them in ``asset_keys``), ``partition`` and ``event`` (the Dagster event type).

Where the context comes from, in order:

1. the Dagster metadata Dagster attaches to every record that goes through a run's log manager
   (``context.log`` and the managed python loggers): run id, job, step key, event, run tags;
2. the current Dagster execution context (``OpExecutionContext.get()``) while a step's compute
   function runs: the asset key(s) of the step, also for plain python loggers;
3. fields bound with :func:`log_context` (processes outside runs: API, CLIs, sensors).

Ways in:

- :class:`JsonFormatter`, a ``logging.Formatter``: the production instance (``dagster.yaml``,
  ``python_logs.dagster_handler_config``) puts it on a stdout handler of every run, so every line
  of every run is JSON whatever the job's loggers;
- :data:`json_logger`, a Dagster ``@logger`` bound in ``Definitions(loggers=...)`` as ``json``,
  for runs that select it (``loggers: {json: {}}`` in the run config / launchpad);
- :func:`configure_logging` for long-running processes outside runs; the read API configures
  uvicorn with :func:`resources.json_logging.uvicorn_log_config`.
"""

import logging
import sys
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import IO, Any

from dagster import (
    BetaWarning,
    DagsterInvariantViolationError,
    Field,
    InitLoggerContext,
    OpExecutionContext,
    logger,
)

from resources import json_logging
from resources.json_logging import PLATFORM_LOGGERS, log_context, log_file, unconfigure_logging

__all__ = [
    "PLATFORM_LOGGERS",
    "JsonFormatter",
    "configure_logging",
    "json_logger",
    "log_context",
    "log_file",
    "unconfigure_logging",
]

# The JSON run handler is configured in dagster.yaml (python_logs.dagster_handler_config), which
# Dagster flags as beta on every run; the code location imports this module, so runs stay quiet.
warnings.filterwarnings("ignore", message="Handling yaml-defined logging", category=BetaWarning)

# (run id, step key) -> asset keys, learned while the step's compute function runs, so lines the
# step writes afterwards (outputs, success) or from other threads carry the asset key too.
_STEP_ASSETS: "OrderedDict[tuple[str, str], list[str]]" = OrderedDict()
_STEP_ASSETS_MAX = 4096


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


def add_dagster_context(record: logging.LogRecord, out: dict[str, Any]) -> None:
    """Run id, job, step, partition, event and asset key(s) of a record, from Dagster's metadata on
    the record or the step running now."""
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


class JsonFormatter(json_logging.JsonFormatter):
    """The platform's JSON formatter with the Dagster context of each line (see the module docstring)."""

    def add_context(self, record: logging.LogRecord, out: dict[str, Any]) -> None:
        add_dagster_context(record, out)


def configure_logging(
    level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None, file: str | None = None
) -> logging.Handler:
    """:func:`resources.json_logging.configure_logging` with the Dagster-aware formatter."""
    return json_logging.configure_logging(level, fmt, stream, file, formatter=JsonFormatter)


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
