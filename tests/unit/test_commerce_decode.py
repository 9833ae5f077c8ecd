"""Validation rules of commerce events (pure logic: no warehouse, no Kafka)."""

import datetime as dt
import json

import pyarrow as pa
import pytest

from assets.commerce.decode import EVENT_SCHEMA, decode_events, parse_timestamps, payload_text

PRODUCT = {"id": "PROD00001", "name": "Pro Laptop 1", "category": "Electronics", "price": 999.99}


def _event(**overrides: object) -> dict:
    event = {
        "event_id": "e-1",
        "event_type": "purchase",
        "timestamp": "2024-01-01T10:00:00",
        "user_id": "USER000001",
        "session_id": "s-1",
        "product": dict(PRODUCT),
        "quantity": 2,
        "total_amount": 1999.98,
        "payment_method": "credit_card",
    }
    event.update(overrides)
    return event


def _one(value: object) -> tuple[list[dict], list[str]]:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    decoded = decode_events([raw])
    return decoded.events.to_pylist(), decoded.dead_reasons


def test_valid_purchase_keeps_every_field() -> None:
    rows, reasons = _one(_event())
    assert reasons == []
    assert rows == [
        {
            "event_id": "e-1",
            "event_type": "purchase",
            "event_timestamp": dt.datetime(2024, 1, 1, 10, 0),
            "user_id": "USER000001",
            "session_id": "s-1",
            "product_id": "PROD00001",
            "product_name": "Pro Laptop 1",
            "product_category": "Electronics",
            "product_price": 999.99,
            "quantity": 2,
            "total_amount": 1999.98,
            "payment_method": "credit_card",
            "search_query": None,
        }
    ]


def test_fields_a_type_does_not_carry_are_null() -> None:
    rows, reasons = _one(_event(event_type="search", query="laptop"))
    assert reasons == []
    assert rows[0]["search_query"] == "laptop"
    assert rows[0]["product_id"] is None and rows[0]["quantity"] is None and rows[0]["total_amount"] is None
    rows, _ = _one(_event(event_type="page_view", quantity=None, total_amount=None))
    assert rows[0]["product_id"] == "PROD00001" and rows[0]["payment_method"] is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"event_id": "e-1", "event_type": "purch', "invalid_json"),
        (b"", "empty_payload"),
        (b"[1, 2]", "not_a_json_object: array"),
        (b'"just a string"', "not_a_json_object: str"),
        (_event(event_id=None), "missing_field: event_id"),
        (_event(timestamp="   "), "missing_field: timestamp"),
        (_event(user_id=12345), "wrong_type: user_id"),
        (_event(product={**PRODUCT, "price": "999.99 USD"}), "wrong_type: product.price"),
        (_event(product={**PRODUCT, "price": True}), "wrong_type: product.price"),
        (_event(quantity=1.5), "wrong_type: quantity"),
        (_event(quantity=0), "invalid_value: quantity"),
        (_event(total_amount=-1), "invalid_value: total_amount"),
        (_event(product={**PRODUCT, "price": -5}), "invalid_value: product.price"),
        (_event(event_type="wishlist_add"), "unknown_event_type: wishlist_add"),
        (_event(event_type="wish\u0000list"), "unknown_event_type: wish\\x00list"),
        (_event(timestamp="yesterday"), "invalid_timestamp"),
        (_event(timestamp="2024-13-01T00:00:00"), "invalid_timestamp"),
        (_event(product=None), "missing_field: product"),
        (_event(product={**PRODUCT, "category": ""}), "missing_field: product.category"),
        (_event(payment_method=None), "missing_field: payment_method"),
        (_event(event_type="search"), "missing_field: query"),
        (_event(event_type="add_to_cart", quantity=None), "missing_field: quantity"),
        (_event(user_id="U" * 129), "invalid_value: user_id"),
        (_event(product="PROD00001"), "wrong_type: product"),
        (_event(event_type="search", query="gaming\u0000laptop"), "invalid_value: query: contains a NUL"),
        (_event(product={**PRODUCT, "name": "\u0000"}), "invalid_value: product.name: contains a NUL"),
    ],
)
def test_each_defect_is_dead_lettered_with_its_reason(payload: object, reason: str) -> None:
    rows, reasons = _one(payload)
    assert rows == []
    assert len(reasons) == 1
    assert reasons[0].startswith(reason), reasons[0]


def test_nul_characters_only_reject_the_fields_that_are_stored() -> None:
    # PostgreSQL text cannot hold NUL; a search query on a page view is not stored, so it may.
    rows, reasons = _one(_event(event_type="page_view", query="a\u0000b"))
    assert reasons == [] and rows[0]["search_query"] is None
    text_lines = [json.dumps(_event(user_id="u\u0000")), json.dumps(_event())]
    assert decode_events(text_lines).dead_reasons == ["invalid_value: user_id: contains a NUL character"]


def test_oversized_payload_is_rejected_before_parsing() -> None:
    big = json.dumps(_event(blob="x" * 2000)).encode()
    decoded = decode_events([big], max_event_bytes=1000)
    assert decoded.events.num_rows == 0
    assert decoded.dead_reasons[0].startswith(f"oversized_payload: {len(big)} bytes")


def test_batch_positions_map_rows_and_dead_letters_back_to_the_input() -> None:
    values = [
        json.dumps(_event(event_id="a")).encode(),
        b"{oops",
        json.dumps(_event(event_id="b", event_type="nope")).encode(),
        json.dumps(_event(event_id="c")).encode(),
    ]
    decoded = decode_events(values)
    assert decoded.rows.tolist() == [0, 3]
    assert decoded.dead_rows.tolist() == [1, 2]
    assert decoded.events.column("event_id").to_pylist() == ["a", "c"]
    assert decoded.events.schema == EVENT_SCHEMA
    assert decoded.total == 4


def test_timestamps_with_offsets_are_converted_to_utc() -> None:
    values = pa.array(
        [
            "2024-01-01T12:00:00+02:00",
            "2024-01-01T10:00:00Z",
            "2024-01-01 10:00:00.5",
            None,
            "2024-02-30T00:00:00",
        ]
    )
    parsed, invalid = parse_timestamps(values)
    assert parsed.to_pylist()[:4] == [
        dt.datetime(2024, 1, 1, 10, 0),
        dt.datetime(2024, 1, 1, 10, 0),
        dt.datetime(2024, 1, 1, 10, 0, 0, 500000),
        None,
    ]
    assert invalid.tolist() == [False, False, False, False, True]


def test_payload_text_never_contains_nul_and_escapes_bad_utf8() -> None:
    assert payload_text(b"a\x00b") == "a\\x00b"
    assert payload_text(b"\xff{}") == "\\xff{}"
    assert payload_text(None) is None
    assert len(payload_text(b"x" * 100, limit=10) or "") == 10
