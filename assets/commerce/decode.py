"""Decode and validate commerce event payloads in bulk (Kafka message values or JSONL lines).

Per message, only what must be done per message runs in Python: a size check and one call of a
typed ``msgspec`` decoder, which parses the JSON *and* checks every field's type, numeric bounds and
string lengths in C. Every rule after that (required fields per event type, known event types,
timestamps) is a vectorized Arrow/NumPy mask over the whole batch, so 100k messages validate in
well under a second. A message that breaks a rule never stops the batch: it comes back as a dead
letter with the *first* rule it broke as its reason.

Rules (event shape of domains.md section 1):

- every event: ``event_id``, ``event_type``, ``timestamp`` (ISO 8601, naive = UTC), ``user_id``,
  ``session_id`` -- non-empty strings of at most 128 characters;
- ``event_type`` in :data:`EVENT_TYPES`;
- ``page_view``, ``add_to_cart``, ``remove_from_cart``, ``purchase``: ``product`` object with string
  ``id``/``name``/``category`` and a numeric ``price`` >= 0;
- cart events and ``purchase``: integer ``quantity`` >= 1; ``purchase``: numeric ``total_amount``
  >= 0 and a string ``payment_method``; ``search``: a non-empty string ``query``.

Fields an event type does not carry are stored as NULL; unknown extra fields are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, cast

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.payloads import payload_text

EVENT_TYPES: tuple[str, ...] = ("page_view", "add_to_cart", "remove_from_cart", "purchase", "search")
PRODUCT_EVENT_TYPES: tuple[str, ...] = ("page_view", "add_to_cart", "remove_from_cart", "purchase")
QUANTITY_EVENT_TYPES: tuple[str, ...] = ("add_to_cart", "remove_from_cart", "purchase")

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 512
DEFAULT_MAX_EVENT_BYTES = 65_536

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("event_timestamp", pa.timestamp("us")),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("product_id", pa.string()),
        ("product_name", pa.string()),
        ("product_category", pa.string()),
        ("product_price", pa.float64()),
        ("quantity", pa.int32()),
        ("total_amount", pa.float64()),
        ("payment_method", pa.string()),
        ("search_query", pa.string()),
    ]
)

_ISO_RE = (
    r"^(19|20|21)\d\d-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?"
    r"(Z|z|[+-]\d\d:?\d\d)?$"
)
_ZONE_RE = r"(Z|z|[+-]\d\d:?\d\d)$"

_Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)]
_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
_Money = Annotated[float, msgspec.Meta(ge=0)]


# gc=False: millions of these per run hold only strings and numbers (no reference cycles), so the
# cyclic garbage collector need not track them; tracking them made collections a third of the
# decode time.
class _Product(msgspec.Struct, gc=False):
    id: _Id | None = None
    name: _Text | None = None
    category: _Text | None = None
    price: _Money | None = None


class _Event(msgspec.Struct, gc=False):
    event_id: _Id | None = None
    event_type: _Id | None = None
    timestamp: _Id | None = None
    user_id: _Id | None = None
    session_id: _Id | None = None
    product: _Product | None = None
    quantity: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    total_amount: _Money | None = None
    payment_method: _Id | None = None
    query: _Text | None = None


_DECODER = msgspec.json.Decoder(_Event)


@dataclass(frozen=True)
class DecodedBatch:
    """Valid events (``rows`` = their position in the input) and dead letters (position, reason)."""

    events: pa.Table
    rows: np.ndarray
    dead_rows: np.ndarray
    dead_reasons: list[str]

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.dead_rows)


def _reason_of(exc: msgspec.DecodeError) -> str:
    """Short, stable reason text for a decoder error."""
    message = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return f"invalid_json: {message}"[:200]
    text, _, path = message.partition(" - at `$")
    field = path.rstrip("`").lstrip(".") if path else ""
    if not field:
        got = text.rsplit("got `", 1)[-1].rstrip("`") if "got `" in text else "value"
        return f"not_a_json_object: {got}"
    kind = "wrong_type" if ", got `" in text else "invalid_value"
    return f"{kind}: {field}: {text}"[:200]


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Boolean Arrow array to NumPy, nulls as False."""
    filled = pc.fill_null(array, False)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _missing(array: pa.Array) -> np.ndarray:
    """Null, or a string that is empty or only whitespace."""
    if pa.types.is_string(array.type):
        blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(array)), 0)
        return _mask(pc.is_null(array)) | _mask(blank)
    return _mask(pc.is_null(array))


def parse_timestamps(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 strings to naive UTC ``timestamp[us]``; returns (timestamps, invalid mask).

    Naive strings are taken as UTC; offsets (``Z``, ``+02:00``, ``-0300``) are converted to UTC.
    Nulls are left null and are not flagged (the caller reports them as missing).
    """
    shaped = _mask(pc.match_substring_regex(values, _ISO_RE))
    present = _mask(pc.is_valid(values))
    candidates = pc.if_else(pa.array(shaped), values, pa.scalar(None, pa.string()))
    has_zone = pc.fill_null(pc.match_substring_regex(candidates, _ZONE_RE), False)
    zoned = pc.if_else(has_zone, candidates, pc.binary_join_element_wise(candidates, "Z", ""))
    target = pa.timestamp("ns", "UTC")
    try:
        utc = pc.cast(zoned, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Shaped like ISO but not a real instant (month 13, Feb 30): find them one by one.
        parsed: list[int | None] = []
        for index, item in enumerate(zoned.to_pylist()):
            value = None
            if item is not None:
                try:
                    value = pc.cast(pa.array([item]), target)[0].value
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    shaped[index] = False
            parsed.append(value)
        utc = pa.array(parsed, target)
    naive = pc.cast(pc.cast(utc, pa.timestamp("us", "UTC"), safe=False), pa.timestamp("us"))
    return naive, present & ~shaped


class _Reasons:
    """First failing rule per row, assigned rule by rule with NumPy masks."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, -1, dtype=np.int32)
        self.texts: list[str] = []

    def add(self, mask: np.ndarray, text: str) -> None:
        hit = mask & (self.code < 0)
        if hit.any():
            self.texts.append(text)
            self.code[hit] = len(self.texts) - 1

    def add_each(self, mask: np.ndarray, text_of: Callable[[int], str]) -> None:
        """Like :meth:`add` with a per-row text (rare rules that quote the offending value)."""
        for index in np.flatnonzero(mask & (self.code < 0)):
            self.texts.append(text_of(int(index)))
            self.code[index] = len(self.texts) - 1

    @property
    def valid(self) -> np.ndarray:
        return self.code < 0

    def reasons_of(self, rows: np.ndarray) -> list[str]:
        return [self.texts[c] for c in self.code[rows]]


# Stored text columns and the payload field each comes from.
_STORED_TEXT_FIELDS = {
    "event_id": "event_id",
    "event_type": "event_type",
    "user_id": "user_id",
    "session_id": "session_id",
    "product_id": "product.id",
    "product_name": "product.name",
    "product_category": "product.category",
    "payment_method": "payment_method",
    "search_query": "query",
}


def _has_nul_escape(values: Sequence[bytes | str | None]) -> bool:
    """Whether any payload contains a JSON ``\\u0000`` escape (one C-level search per batch)."""
    try:
        return b"\\u0000" in b"".join(v for v in values if v)  # type: ignore[misc]
    except TypeError:  # text payloads (JSONL lines read as str)
        return any("\\u0000" in str(v) for v in values if v)


def _null_unless(array: pa.Array, keep: np.ndarray) -> pa.Array:
    if keep.all():
        return array
    return pc.if_else(pa.array(keep), array, pa.scalar(None, array.type))


def decode_events(
    values: Sequence[bytes | str | None], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> DecodedBatch:
    """Validate ``values`` (one JSON document each); see the module docstring for the rules."""
    decode = _DECODER.decode
    decode_error = msgspec.DecodeError
    objs: list[_Event] = []
    keep = objs.append
    dead_rows: list[int] = []
    dead_reasons: list[str] = []
    for index, value in enumerate(values):
        if not value:
            dead_rows.append(index)
            dead_reasons.append("empty_payload")
        elif len(value) > max_event_bytes:
            dead_rows.append(index)
            dead_reasons.append(f"oversized_payload: {len(value)} bytes > {max_event_bytes}")
        else:
            try:
                keep(decode(value))
            except decode_error as exc:
                dead_rows.append(index)
                dead_reasons.append(_reason_of(exc))
    rows = np.delete(np.arange(len(values), dtype=np.int64), dead_rows) if dead_rows else None

    n = len(objs)
    reasons = _Reasons(n)
    string = pa.string()
    # Literal attribute reads (not getattr with a name): the hottest Python loop of the decode.
    columns: dict[str, pa.Array] = {
        "event_id": pa.array([o.event_id for o in objs], string),
        "event_type": pa.array([o.event_type for o in objs], string),
        "user_id": pa.array([o.user_id for o in objs], string),
        "session_id": pa.array([o.session_id for o in objs], string),
        "payment_method": pa.array([o.payment_method for o in objs], string),
        "query": pa.array([o.query for o in objs], string),
    }
    raw_ts = pa.array([o.timestamp for o in objs], string)
    for name in ("event_id", "event_type"):
        reasons.add(_missing(columns[name]), f"missing_field: {name}")
    reasons.add(_missing(raw_ts), "missing_field: timestamp")
    for name in ("user_id", "session_id"):
        reasons.add(_missing(columns[name]), f"missing_field: {name}")

    event_type = columns["event_type"]
    known = _mask(pc.is_in(event_type, value_set=pa.array(EVENT_TYPES)))
    if not known.all():
        type_values = event_type.to_pylist()
        reasons.add_each(~known, lambda i: f"unknown_event_type: {payload_text(str(type_values[i]), 40)}")

    timestamps, bad_ts = parse_timestamps(raw_ts)
    reasons.add(bad_ts, "invalid_timestamp")

    needs_product = _mask(pc.is_in(event_type, value_set=pa.array(PRODUCT_EVENT_TYPES)))
    needs_quantity = _mask(pc.is_in(event_type, value_set=pa.array(QUANTITY_EVENT_TYPES)))
    is_purchase = _mask(pc.equal(event_type, "purchase"))
    is_search = _mask(pc.equal(event_type, "search"))

    products = [o.product for o in objs]
    no_product = np.fromiter((p is None for p in products), dtype=bool, count=n)
    reasons.add(needs_product & no_product, "missing_field: product")
    # Without a missing product the list is used as is (no copy on the hot path).
    present = [p for p in products if p is not None] if no_product.any() else cast("list[_Product]", products)
    product_columns = {
        "product_id": pa.array([p.id for p in present], string),
        "product_name": pa.array([p.name for p in present], string),
        "product_category": pa.array([p.category for p in present], string),
        "product_price": pa.array([p.price for p in present], pa.float64()),
    }
    if len(present) < n:  # spread the present products back over all rows (nulls elsewhere)
        slots = pa.array(np.cumsum(~no_product) - 1, pa.int64(), mask=no_product)
        product_columns = {name: array.take(slots) for name, array in product_columns.items()}
    for column, array in product_columns.items():
        reasons.add(needs_product & _missing(array), f"missing_field: product.{column[len('product_') :]}")
    quantity = pa.array([o.quantity for o in objs], pa.int32())
    reasons.add(needs_quantity & _missing(quantity), "missing_field: quantity")
    amount = pa.array([o.total_amount for o in objs], pa.float64())
    reasons.add(is_purchase & _missing(amount), "missing_field: total_amount")
    reasons.add(is_purchase & _missing(columns["payment_method"]), "missing_field: payment_method")
    reasons.add(is_search & _missing(columns["query"]), "missing_field: query")

    table = pa.table(
        {
            "event_id": columns["event_id"],
            "event_type": event_type,
            "event_timestamp": timestamps,
            "user_id": columns["user_id"],
            "session_id": columns["session_id"],
            **{name: _null_unless(array, needs_product) for name, array in product_columns.items()},
            "quantity": _null_unless(quantity, needs_quantity),
            "total_amount": _null_unless(amount, is_purchase),
            "payment_method": _null_unless(columns["payment_method"], is_purchase),
            "search_query": _null_unless(columns["query"], is_search),
        },
        schema=EVENT_SCHEMA,
    )
    # PostgreSQL text cannot hold NUL: one "\u0000" escape would fail the whole COPY, and the run
    # with it, on every retry. The exact per-column test runs only when a payload has the escape.
    if n and _has_nul_escape(values):
        for column, field_name in _STORED_TEXT_FIELDS.items():
            has_nul = _mask(pc.match_substring(table.column(column), "\x00"))
            reasons.add(has_nul, f"invalid_value: {field_name}: contains a NUL character")
    valid = reasons.valid
    row_index = np.arange(n, dtype=np.int64) if rows is None else rows
    invalid_local = np.flatnonzero(~valid)
    all_dead_rows = np.concatenate([np.asarray(dead_rows, dtype=np.int64), row_index[invalid_local]])
    all_dead_reasons = dead_reasons + reasons.reasons_of(invalid_local)
    order = np.argsort(all_dead_rows, kind="stable")
    return DecodedBatch(
        events=table if valid.all() else table.filter(pa.array(valid)),
        rows=row_index[valid],
        dead_rows=all_dead_rows[order],
        dead_reasons=[all_dead_reasons[i] for i in order],
    )
