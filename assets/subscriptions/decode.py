"""Decode subscriptions command events (Kafka ``user_events`` messages or landed JSONL lines).

The envelope, produced by the command API (:mod:`api.commands`)::

    {"event_id": "<id>", "correlation_id": "<id>", "event_type": "<type>", "user_id": "<id>",
     "occurred_at": "<ISO 8601, naive = UTC>", "idempotency_key": "<str>" | null, "payload": {...}}

becomes one row of ``raw.user_events``: the envelope fields, the payload's fields as typed columns
and the payload itself as JSON text. A message breaking a rule is a dead letter with the first rule it
broke; the business rules that need history (unknown user, cancelled subscription, duplicate
payment) are the SQL models' job, not the decoder's.

Rules: the envelope is a JSON object; ``event_id``, ``correlation_id`` and ``user_id`` are ids
(1-128 of ``[A-Za-z0-9_.:@-]``, starting with a letter or digit: they are written into JSON text by
the models); ``event_type`` is one of :data:`EVENT_TYPES`; ``occurred_at`` is ISO 8601;
``idempotency_key`` is a string or null; ``payload`` an object whose fields the event type needs
(:data:`_PAYLOAD_RULES`) have the right types. Amounts are positive numbers or decimal strings (the
API serializes decimals as strings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from resources.payloads import payload_text

EVENT_TYPES: tuple[str, ...] = (
    "usuario_criado",
    "assinatura_criada",
    "assinatura_alterada",
    "assinatura_cancelada",
    "pagamento_registrado",
    "config_atualizada",
)
PAYMENT_STATUSES: tuple[str, ...] = ("aprovado", "recusado")
DEFAULT_MAX_EVENT_BYTES = 65_536
MAX_TEXT_CHARS = 512
MAX_AMOUNT = Decimal("9999999999.99")

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("correlation_id", pa.string()),
        ("event_type", pa.string()),
        ("user_id", pa.string()),
        ("occurred_at", pa.timestamp("us")),
        ("idempotency_key", pa.string()),
        ("nome", pa.string()),
        ("email", pa.string()),
        ("plano", pa.string()),
        ("valor_mensal", pa.float64()),
        ("valor", pa.float64()),
        ("metodo", pa.string()),
        ("pagamento_status", pa.string()),
        ("preferencias", pa.string()),
        ("payload", pa.string()),
    ]
)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_ISO_RE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?(Z|z|[+-]\d\d:?\d\d)?$")


class _Invalid(ValueError):
    """A rule the message broke (its text is the dead letter's reason)."""


@dataclass(frozen=True)
class DecodedCommands:
    """Valid events (``rows`` = their positions in the input) and dead letters (position, reason)."""

    events: pa.Table
    rows: np.ndarray
    dead_rows: np.ndarray
    dead_reasons: list[str]


def _text(payload: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise _Invalid(f"missing_field: payload.{name}")
        return None
    if not isinstance(value, str):
        raise _Invalid(f"wrong_type: payload.{name}: expected a string")
    if not value.strip() or len(value) > MAX_TEXT_CHARS or "\x00" in value:
        raise _Invalid(f"invalid_value: payload.{name}: empty, longer than {MAX_TEXT_CHARS} or with NUL")
    return value


def _amount(payload: dict[str, Any], name: str) -> float:
    value = payload.get(name)
    if value is None:
        raise _Invalid(f"missing_field: payload.{name}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid(f"wrong_type: payload.{name}: expected a number or a decimal string")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        shown = payload_text(str(value), 40)
        raise _Invalid(f"wrong_type: payload.{name}: {shown} is not a number") from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or amount != round(amount, 2):
        raise _Invalid(f"invalid_value: payload.{name}: must be > 0 with at most 2 decimal places")
    return float(amount)


def _user(payload: dict[str, Any], row: dict[str, Any]) -> None:
    row["nome"], row["email"] = _text(payload, "nome"), _text(payload, "email")


def _subscription(payload: dict[str, Any], row: dict[str, Any]) -> None:
    row["plano"], row["valor_mensal"] = _text(payload, "plano"), _amount(payload, "valor_mensal")


def _cancellation(payload: dict[str, Any], row: dict[str, Any]) -> None:
    row["plano"] = _text(payload, "plano", required=False)


def _payment(payload: dict[str, Any], row: dict[str, Any]) -> None:
    row["valor"], row["metodo"] = _amount(payload, "valor"), _text(payload, "metodo")
    status = _text(payload, "status", required=False) or "aprovado"
    if status not in PAYMENT_STATUSES:
        raise _Invalid(f"invalid_value: payload.status: {payload_text(status, 40)} not in {PAYMENT_STATUSES}")
    row["pagamento_status"] = status


def _config(payload: dict[str, Any], row: dict[str, Any]) -> None:
    preferences = payload.get("preferencias")
    if preferences is None:
        raise _Invalid("missing_field: payload.preferencias")
    if not isinstance(preferences, dict):
        raise _Invalid("wrong_type: payload.preferencias: expected an object")
    if not preferences:
        raise _Invalid("invalid_value: payload.preferencias: empty")
    row["preferencias"] = orjson.dumps(preferences, option=orjson.OPT_SORT_KEYS).decode()


_PAYLOAD_RULES: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "usuario_criado": _user,
    "assinatura_criada": _subscription,
    "assinatura_alterada": _subscription,
    "assinatura_cancelada": _cancellation,
    "pagamento_registrado": _payment,
    "config_atualizada": _config,
}


def _id(envelope: dict[str, Any], name: str) -> str:
    value = envelope.get(name)
    if value is None or value == "":
        raise _Invalid(f"missing_field: {name}")
    if not isinstance(value, str):
        raise _Invalid(f"wrong_type: {name}: expected a string")
    if not _ID_RE.match(value):
        raise _Invalid(f"invalid_value: {name}: 1-128 characters of [A-Za-z0-9_.:@-]")
    return value


def _timestamp(value: Any) -> datetime:
    if value is None or value == "":
        raise _Invalid("missing_field: occurred_at")
    if not isinstance(value, str):
        raise _Invalid("wrong_type: occurred_at: expected an ISO 8601 string")
    if not _ISO_RE.match(value):
        raise _Invalid("invalid_timestamp: occurred_at")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise _Invalid("invalid_timestamp: occurred_at") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def decode_command(value: bytes | str | None, max_event_bytes: int) -> dict[str, Any]:
    """One message -> its raw row (``_Invalid`` with the reason when a rule is broken)."""
    if not value:
        raise _Invalid("empty_payload")
    if len(value) > max_event_bytes:
        raise _Invalid(f"oversized_payload: {len(value)} bytes > {max_event_bytes}")
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _Invalid(f"invalid_json: {exc}"[:200]) from None
    if not isinstance(envelope, dict):
        raise _Invalid(f"not_a_json_object: {type(envelope).__name__}")
    row: dict[str, Any] = {name: _id(envelope, name) for name in ("event_id", "correlation_id")}
    event_type = envelope.get("event_type")
    if event_type is None or event_type == "":
        raise _Invalid("missing_field: event_type")
    if not isinstance(event_type, str):
        raise _Invalid("wrong_type: event_type: expected a string")
    if event_type not in _PAYLOAD_RULES:
        raise _Invalid(f"unknown_event_type: {payload_text(event_type, 40)}")
    row["event_type"] = event_type
    row["user_id"] = _id(envelope, "user_id")
    row["occurred_at"] = _timestamp(envelope.get("occurred_at"))
    key = envelope.get("idempotency_key")
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= 200 and "\x00" not in key):
        raise _Invalid("wrong_type: idempotency_key: expected a string of 1-200 characters or null")
    row["idempotency_key"] = key
    payload = envelope.get("payload")
    if payload is None:
        raise _Invalid("missing_field: payload")
    if not isinstance(payload, dict):
        raise _Invalid("wrong_type: payload: expected an object")
    _PAYLOAD_RULES[event_type](payload, row)
    row["payload"] = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
    return row


def decode_commands(
    values: Sequence[bytes | str | None], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> DecodedCommands:
    """Validate ``values`` (one JSON envelope each); see the module docstring for the rules."""
    decoded: list[dict[str, Any]] = []
    rows: list[int] = []
    dead_rows: list[int] = []
    dead_reasons: list[str] = []
    for index, value in enumerate(values):
        try:
            decoded.append(decode_command(value, max_event_bytes))
        except _Invalid as exc:
            dead_rows.append(index)
            dead_reasons.append(str(exc))
        else:
            rows.append(index)
    columns = {
        field.name: pa.array([row.get(field.name) for row in decoded], field.type) for field in EVENT_SCHEMA
    }
    return DecodedCommands(
        events=pa.table(columns, schema=EVENT_SCHEMA),
        rows=np.asarray(rows, dtype=np.int64),
        dead_rows=np.asarray(dead_rows, dtype=np.int64),
        dead_reasons=dead_reasons,
    )
