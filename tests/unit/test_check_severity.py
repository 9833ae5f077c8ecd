"""Data tests declare ``severity: warn|error`` in the model header; undeclared tests are ERROR."""

from pathlib import Path

import pytest
from dagster import AssetCheckSeverity

from dbt_like_sql import SqlProjectError, data_tests, parse_model
from dbt_like_sql.assets import _check_result, check_specs

MODEL = """/* ---
schema: mart
name: m
group: lab
columns:
  a: {tests: [not_null, {accepted_values: {values: [1, 2], severity: warn}}]}
  b: {tests: [{range: {min: 0, severity: error}}]}
--- */
SELECT a, b FROM raw.src
"""


def _model():
    return parse_model(MODEL, Path("m.sql"), default_group="lab")


def test_declared_severity_is_parsed_and_defaults_to_error() -> None:
    severities = {t.name: t.severity for t in _model().tests}
    assert severities == {"not_null__a": "error", "accepted_values__a": "warn", "range__b": "error"}


def test_severity_reaches_the_check_spec_and_the_check_result() -> None:
    model = _model()
    assert {s.name: s.metadata["severity"] for s in check_specs(model)} == {
        "not_null__a": "error",
        "accepted_values__a": "warn",
        "range__b": "error",
    }
    for test in model.tests:
        result = _check_result(
            model, data_tests.TestOutcome(test=test, passed=False, failing_rows=3, samples=[], sql="")
        )
        expected = AssetCheckSeverity.WARN if test.severity == "warn" else AssetCheckSeverity.ERROR
        assert (result.passed, result.severity) == (False, expected), test.name


def test_unknown_severity_is_rejected() -> None:
    with pytest.raises(SqlProjectError, match="severity: Input should be 'warn' or 'error'"):
        parse_model(MODEL.replace("severity: warn", "severity: fatal"), Path("m.sql"), default_group="lab")
