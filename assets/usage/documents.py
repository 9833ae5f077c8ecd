"""Usage-event documents: the contract every source (MongoDB, landed JSON files) is validated against.

One function turns a batch of documents into typed Arrow rows plus rejects with a reason, so the MongoDB
ingest and the landing-file ingest accept and refuse exactly the same documents. Pure logic: no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from bson import ObjectId, json_util
from bson.json_util import JSONMode, JSONOptions

RAW_CONTENT_MAX_CHARS = 20_000

# Field -> kind. Required fields must be present, non-null and of the right type.
REQUIRED_FIELDS: dict[str, str] = {
    "user_id": "text",
    "ide": "text",
    "model": "text",
    "input_tokens": "count",
    "output_tokens": "count",
    "created_at": "datetime",
    "updated_at": "datetime",
}
OPTIONAL_FIELDS: dict[str, str] = {
    "user_name": "text",
    "team": "text",
    "feature": "text",
    "language": "text",
    "prompt": "text",
    "response": "text",
    "latency_ms": "count",
}

USAGE_ROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("user_name", pa.string()),
        ("team", pa.string()),
        ("ide", pa.string()),
        ("model", pa.string()),
        ("feature", pa.string()),
        ("language", pa.string()),
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("latency_ms", pa.int64()),
        ("created_at", pa.timestamp("us")),
        ("source_updated_at", pa.timestamp("us")),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("reason", pa.string()),
        ("raw_content", pa.string()),
        ("source_updated_at", pa.timestamp("us")),
        ("position", pa.int64()),  # index of the document in the validated batch
    ]
)

_RELAXED = JSONOptions(json_mode=JSONMode.RELAXED, tz_aware=True)


def event_id_of(value: Any) -> str | None:
    """The warehouse identity of a document id: ObjectId hex, a string as is, other scalars as text."""
    if value is None:
        return None
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool | int | float):
        return str(value)
    return json_util.dumps(value, json_options=_RELAXED)


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """Warehouse timestamps are naive UTC; aware values are converted, naive ones taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def parse_datetime_text(text: str) -> dt.datetime | None:
    """ISO-8601 text (``Z`` allowed) from JSON files, which have no date type; None when unparseable."""
    try:
        return to_utc_naive(dt.datetime.fromisoformat(text.strip()))
    except ValueError:
        return None


def raw_content(doc: Mapping[str, Any]) -> str:
    """The document as relaxed extended JSON (types visible), truncated for the rejects table."""
    try:
        text = json_util.dumps(doc, json_options=_RELAXED, ensure_ascii=False)
    except (TypeError, ValueError) as exc:  # a value json_util cannot encode
        text = f"<unencodable document: {exc}>"
    return text if len(text) <= RAW_CONTENT_MAX_CHARS else text[:RAW_CONTENT_MAX_CHARS] + "…"


def _check(name: str, kind: str, value: Any, date_strings: bool) -> tuple[Any, str | None]:
    """(converted value, problem) for one field value that is present and not None."""
    if kind == "text":
        if not isinstance(value, str):
            return None, f"{name}: expected string, got {type(value).__name__}"
        return value, None
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{name}: expected integer, got {type(value).__name__}"
        if isinstance(value, float) and not value.is_integer():
            return None, f"{name}: expected integer, got {value!r}"
        if value < 0:
            return None, f"{name}: must be >= 0, got {value!r}"
        if value > 2**62:
            return None, f"{name}: out of range ({value!r})"
        return int(value), None
    # datetime
    if isinstance(value, dt.datetime):
        return to_utc_naive(value), None
    if date_strings and isinstance(value, str):
        parsed = parse_datetime_text(value)
        if parsed is None:
            return None, f"{name}: not an ISO-8601 timestamp: {value[:40]!r}"
        return parsed, None
    return None, f"{name}: expected date, got {type(value).__name__}"


def validate_document(doc: Any, *, date_strings: bool = False) -> tuple[dict[str, Any] | None, list[str]]:
    """Check one document against the contract: (row values, []) or (None, reasons)."""
    if not isinstance(doc, Mapping):
        return None, [f"document is not an object (got {type(doc).__name__})"]
    reasons: list[str] = []
    row: dict[str, Any] = {}
    event_id = event_id_of(doc.get("_id"))
    if event_id is None:
        reasons.append("_id: missing")
    row["event_id"] = event_id
    for fields, required in ((REQUIRED_FIELDS, True), (OPTIONAL_FIELDS, False)):
        for name, kind in fields.items():
            value = doc.get(name)
            if value is None:
                if required:
                    reasons.append(f"{name}: missing")
                row[name] = None
                continue
            converted, problem = _check(name, kind, value, date_strings)
            if problem:
                reasons.append(problem)
            elif required and kind == "text" and not converted.strip():
                reasons.append(f"{name}: empty")
            row[name] = converted
    if reasons:
        return None, reasons
    row["source_updated_at"] = row.pop("updated_at")
    return row, []


@dataclass(frozen=True)
class ValidatedBatch:
    """Valid rows (``USAGE_ROW_SCHEMA``) and rejects (``REJECT_SCHEMA``) of one batch of documents."""

    rows: pa.Table
    rejects: pa.Table

    @property
    def total(self) -> int:
        return self.rows.num_rows + self.rejects.num_rows


def _changed_at(doc: Any) -> dt.datetime | None:
    value = doc.get("updated_at") if isinstance(doc, Mapping) else None
    return to_utc_naive(value) if isinstance(value, dt.datetime) else None


_TEXT_REQUIRED = tuple(name for name, kind in REQUIRED_FIELDS.items() if kind == "text")
_COUNT_REQUIRED = tuple(name for name, kind in REQUIRED_FIELDS.items() if kind == "count")
_TEXT_OPTIONAL = tuple(name for name, kind in OPTIONAL_FIELDS.items() if kind == "text")
_MAX_COUNT = 2**62


def _fast_row(doc: Any) -> tuple[Any, ...] | None:
    """The row of a well-formed MongoDB document without building reasons (the common case, hot loop).

    Returns None whenever anything is unusual; :func:`validate_document` then decides and explains.
    Dates stay as they are (aware or naive) and are normalized column-wise by Arrow.
    """
    if type(doc) is not dict:
        return None
    get = doc.get
    _id = get("_id")
    if type(_id) is ObjectId:
        event_id = str(_id)
    elif type(_id) is str and _id:
        event_id = _id
    else:
        return None
    for name in _TEXT_REQUIRED:
        value = get(name)
        if type(value) is not str or not value.strip():
            return None
    for name in _COUNT_REQUIRED:
        value = get(name)
        if type(value) is not int or not 0 <= value <= _MAX_COUNT:
            return None
    for name in _TEXT_OPTIONAL:
        value = get(name)
        if value is not None and type(value) is not str:
            return None
    latency = get("latency_ms")
    if latency is not None and (type(latency) is not int or not 0 <= latency <= _MAX_COUNT):
        return None
    created, updated = get("created_at"), get("updated_at")
    if type(created) is not dt.datetime or type(updated) is not dt.datetime:
        return None
    return (
        event_id,
        doc["user_id"],
        get("user_name"),
        get("team"),
        doc["ide"],
        doc["model"],
        get("feature"),
        get("language"),
        get("prompt"),
        get("response"),
        doc["input_tokens"],
        doc["output_tokens"],
        latency,
        created,
        updated,
    )


def _timestamps(values: list[Any]) -> pa.Array:
    """Naive-UTC microsecond timestamps from aware or naive datetimes (naive ones are UTC already)."""
    aware = [
        v if v is None or v.tzinfo is None else v.astimezone(dt.UTC).replace(tzinfo=None) for v in values
    ]
    return pa.array(aware, pa.timestamp("us"))


def validate_documents(docs: Iterable[Any], *, date_strings: bool = False) -> ValidatedBatch:
    """Validate a batch; of two versions of one ``_id`` the older is rejected as superseded.

    Every input document ends up in exactly one of rows / rejects, so callers can reconcile counts.
    """
    rows: list[tuple[Any, ...]] = []
    kept_docs: list[tuple[int, Any]] = []
    slot: dict[str, int] = {}
    rejects: dict[str, list[Any]] = {name: [] for name in REJECT_SCHEMA.names}
    names = USAGE_ROW_SCHEMA.names
    updated_at = names.index("source_updated_at")

    def reject(doc: Any, reason: str, index: int) -> None:
        mapping = isinstance(doc, Mapping)
        rejects["position"].append(index)
        rejects["event_id"].append(event_id_of(doc.get("_id")) if mapping else None)
        rejects["reason"].append(reason)
        rejects["raw_content"].append(raw_content(doc) if mapping else json.dumps(doc, default=str)[:2000])
        rejects["source_updated_at"].append(_changed_at(doc))

    for index, doc in enumerate(docs):
        row = _fast_row(doc)
        if row is None:
            checked, reasons = validate_document(doc, date_strings=date_strings)
            if checked is None:
                reject(doc, "; ".join(reasons), index)
                continue
            row = tuple(checked[name] for name in names)
        seen = slot.get(row[0])
        if seen is None:
            slot[row[0]] = len(rows)
            rows.append(row)
            kept_docs.append((index, doc))
            continue
        superseded = "superseded by a later version of the same _id in this batch"
        if to_utc_naive(rows[seen][updated_at]) >= to_utc_naive(row[updated_at]):
            reject(doc, superseded, index)
            continue
        reject(kept_docs[seen][1], superseded, kept_docs[seen][0])
        rows[seen], kept_docs[seen] = row, (index, doc)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for name, values in zip(names, columns, strict=True):
        field_type = USAGE_ROW_SCHEMA.field(name).type
        if pa.types.is_timestamp(field_type):
            arrays.append(_timestamps(list(values)))
        else:
            arrays.append(pa.array(values, field_type))
    return ValidatedBatch(
        rows=pa.Table.from_arrays(arrays, schema=USAGE_ROW_SCHEMA),
        rejects=pa.table(rejects, schema=REJECT_SCHEMA),
    )
