"""Types every router shares, so that the OpenAPI schema tells a generated client the truth.

* Parameters: :data:`Text` (non-blank, no control characters: a NUL cannot reach a driver),
  :data:`Instant` and :data:`Day` (ISO 8601 strings only: ``0`` or ``0.5`` are not dates). An
  instant outside what the warehouse can compare with is clamped, never an overflow: every stored
  row lies after ``0001-01-01`` and before ``9999-12-31T23:59:59.999999`` (UTC).
* Responses: :data:`UtcDateTime` (the warehouse stores naive UTC; the JSON always carries ``Z``),
  :data:`Money` and :data:`Kilograms` (exact decimal strings with at least their column's scale),
  and :data:`ErrorAnswer` for every ``{"detail": "..."}`` answer (404, 503).
"""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

# ----- parameters

# At least one visible character; no C0 control character nor DEL anywhere (PostgreSQL text cannot
# hold NUL). Plain character classes only, so Python, Rust (pydantic) and ECMA regexes agree.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
Text = Annotated[str, StringConstraints(pattern=TEXT_PATTERN)]

_ISO_DAY = r"\d{4}-\d{2}-\d{2}"
_ISO_INSTANT = re.compile(
    rf"^{_ISO_DAY}([Tt ]\d{{2}}:\d{{2}}(:\d{{2}}(\.\d+)?)?([Zz]|[+-]\d{{2}}(:?\d{{2}})?)?)?$", re.ASCII
)
_ISO_DATE = re.compile(rf"^{_ISO_DAY}$", re.ASCII)


def _iso_instant(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_INSTANT.match(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2024-05-01T13:00:00Z (naive = UTC)")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date, e.g. 2024-05-01")
    return value


def naive_utc(value: datetime | None) -> datetime | None:
    """The warehouse's form: naive UTC. Aware values are converted, clamped to the representable range."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 lies before datetime.min in UTC
        return datetime.min if value.year == 1 else datetime.max


def shift(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, saturating at the ends of the calendar instead of raising OverflowError."""
    try:
        return moment + delta
    except OverflowError:
        return datetime.max if delta > timedelta(0) else datetime.min


# A query instant (ISO 8601; naive = UTC), handed to the routes as naive UTC.
Instant = Annotated[datetime, BeforeValidator(_iso_instant), AfterValidator(naive_utc)]
# A query day (ISO 8601 YYYY-MM-DD).
Day = Annotated[date, BeforeValidator(_iso_date)]


# ----- responses


def _aware_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_aware_utc)]


def exact_decimal(scale: int, description: str) -> Any:
    """A decimal served as a string with at least ``scale`` fractional digits, never a binary float."""
    quantum = Decimal(1).scaleb(-scale)
    pattern = rf"^-?[0-9]+\.[0-9]{{{scale},}}$"

    def render(value: Decimal) -> str:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > -scale:
            value = value.quantize(quantum)  # only adds zeros: exact
        return format(value, "f")

    return Annotated[
        Decimal,
        PlainSerializer(render, return_type=str),
        WithJsonSchema(
            {
                "type": "string",
                "format": "decimal",
                "pattern": pattern,
                "description": description,
                "examples": [format(Decimal(1234) + quantum * 5, "f")],
            },
            mode="serialization",
        ),
    ]


Money = exact_decimal(
    2, "Exact amount: a decimal string with 2 or more fractional digits (parse it as a decimal, not a float)"
)
Kilograms = exact_decimal(3, "Exact weight in kg: a decimal string with 3 or more fractional digits")


class ErrorAnswer(BaseModel):
    """A refusal with its reason (validation errors use FastAPI's ``HTTPValidationError``)."""

    detail: str


NOT_PRODUCED: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorAnswer,
        "description": "The table or index is not produced yet (materialize it), or the store is unreachable",
    }
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorAnswer, "description": "Nothing matches the filters"}
}
