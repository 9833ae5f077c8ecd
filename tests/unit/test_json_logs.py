"""Structured JSON logs: the shape of a line, where run id / asset key come from, the Dagster logger."""

import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator

import pytest
from dagster import AssetKey, Definitions, asset, define_asset_job

from orchestration.definitions import defs as platform_defs
from orchestration.json_logs import (
    PLATFORM_LOGGERS,
    JsonFormatter,
    configure_logging,
    json_logger,
    log_context,
    unconfigure_logging,
)
from resources import json_logging
from resources.json_logging import uvicorn_log_config

CORE = ["ts", "level", "logger", "message", "run_id", "job", "step_key", "asset_key"]


def _record(msg: object = "hello %s", args: tuple = ("world",), **extra: object) -> logging.LogRecord:
    record = logging.getLogger("afluente.test").makeRecord(
        "afluente.test", logging.WARNING, __file__, 10, msg, args, None, extra=extra or None
    )
    return record


def test_plain_record_is_one_json_object_with_core_fields_first() -> None:
    line = JsonFormatter().format(_record(rows=3, table="raw.x"))
    assert "\n" not in line
    obj = json.loads(line)
    assert list(obj)[: len(CORE)] == CORE
    assert obj["message"] == "hello world"
    assert obj["level"] == "WARNING" and obj["logger"] == "afluente.test"
    assert obj["ts"].endswith("+00:00") and "T" in obj["ts"]
    assert obj["run_id"] is None and obj["asset_key"] is None  # outside a run: present, null
    assert obj["rows"] == 3 and obj["table"] == "raw.x"
    assert set(obj) == {*CORE, "rows", "table"}  # the message once, not again as an extra


def test_exception_and_unserializable_extras() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("afluente.test").makeRecord(
            "afluente.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info(), extra={"obj": object()}
        )
    obj = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in obj["exc_info"]
    assert obj["obj"].startswith("<object object")


def test_a_mapping_logged_as_the_message_becomes_fields_and_odd_values_are_encoded() -> None:
    """python-json-logger's behaviour, kept under the platform's fields: a dict message is fields."""
    import datetime as dt

    record = _record(
        msg={"rows": 3, "message_kind": "summary"}, args=(), when=dt.datetime(2024, 1, 2, 3, 4, 5)
    )
    obj = json.loads(JsonFormatter().format(record))
    assert list(obj)[: len(CORE)] == CORE
    assert obj["message"] == "" and obj["rows"] == 3 and obj["message_kind"] == "summary"
    assert obj["when"] == "2024-01-02T03:04:05"  # ISO 8601, not str()'s "2024-01-02 03:04:05"


def test_an_extra_named_like_a_core_field_is_kept_under_extra_() -> None:
    obj = json.loads(JsonFormatter().format(_record(level_hint="x", job="not-a-run")))
    assert obj["job"] is None and obj["extra_job"] == "not-a-run" and obj["level_hint"] == "x"


def test_log_context_binds_fields_without_overriding_known_ones() -> None:
    with log_context(run_id="r-1", asset_key="raw/x", request_id="abc"):
        obj = json.loads(JsonFormatter().format(_record()))
    assert (obj["run_id"], obj["asset_key"], obj["request_id"]) == ("r-1", "raw/x", "abc")
    assert json.loads(JsonFormatter().format(_record()))["run_id"] is None


def test_json_logger_lines_of_a_run_carry_run_id_job_step_and_asset_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @asset(key=AssetKey(["raw", "thing"]))
    def thing(context) -> int:
        context.log.info("loaded 3 rows", extra={"rows": 3})
        logging.getLogger("assets.thing").info("not managed: no JSON line from this one")
        return 3

    defs = Definitions(
        assets=[thing], jobs=[define_asset_job("thing_job", [thing])], loggers={"json": json_logger}
    )
    result = defs.resolve_job_def("thing_job").execute_in_process(
        run_config={"loggers": {"json": {"config": {"log_level": "DEBUG"}}}}
    )
    assert result.success
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["message"] == "loaded 3 rows"]
    assert len(mine) == 1
    line = mine[0]
    assert line["run_id"] == result.run_id
    assert line["job"] == "thing_job"
    assert line["step_key"] == "raw__thing"
    assert line["asset_key"] == "raw/thing"
    assert line["rows"] == 3 and line["level"] == "INFO" and line["logger"] == "dagster"
    materialized = [line for line in lines if line.get("event") == "ASSET_MATERIALIZATION"]
    assert materialized and materialized[0]["asset_key"] == "raw/thing"
    assert all(line["run_id"] == result.run_id for line in lines)


def test_platform_definitions_offer_the_json_logger_next_to_the_default_console() -> None:
    job = platform_defs.resolve_implicit_global_asset_job_def()
    assert set(job.loggers) == {"console", "json"}
    assert job.loggers["json"] is json_logger


def test_configure_logging_writes_json_for_every_platform_logger_and_is_idempotent() -> None:
    stream = io.StringIO()
    try:
        configure_logging("INFO", "json", stream=stream)
        configure_logging("INFO", "json", stream=stream)  # twice: still one handler
        for name in PLATFORM_LOGGERS:
            logging.getLogger(f"{name}.child").info("from %s", name)
        logging.getLogger("afluente.api").debug("below the level")
    finally:
        unconfigure_logging()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [f"from {name}" for name in PLATFORM_LOGGERS]
    assert all(
        not [h for h in logging.getLogger(n).handlers if h.get_name() == "afluente"] for n in PLATFORM_LOGGERS
    )


def test_text_format_is_available() -> None:
    stream = io.StringIO()
    try:
        configure_logging("INFO", "text", stream=stream)
        logging.getLogger("api.x").warning("plain")
    finally:
        unconfigure_logging()
    assert stream.getvalue().rstrip().endswith("WARNING api.x plain")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """dictConfig changes process-wide loggers: put handlers, levels and propagation back."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", *PLATFORM_LOGGERS)
    saved = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in names
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate) in saved.items():
            target = logging.getLogger(name)
            target.handlers[:] = handlers
            target.setLevel(level)
            target.propagate = propagate


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_uvicorn_log_config_is_a_valid_dict_config(fmt: str) -> None:
    config = uvicorn_log_config("info", fmt)
    assert {"uvicorn", "uvicorn.error", "uvicorn.access", *PLATFORM_LOGGERS} <= set(config["loggers"])
    logging.config.dictConfig(config)
    handler = logging.getLogger("uvicorn.access").handlers[0]
    # The read API's formatter: the platform's line format without Dagster's context.
    assert isinstance(handler.formatter, json_logging.JsonFormatter) == (fmt == "json")
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/x", "1.1", 200),
        None,
    )
    if fmt == "json":
        obj = json.loads(handler.format(record))
        assert obj["http"] == {
            "client": "1.2.3.4:5",
            "method": "GET",
            "path": "/x",
            "version": "1.1",
            "status": 200,
        }
