"""Pure logic of the MongoDB watermark: keyset filters, batch ranges as run config, run requests."""

import datetime as dt

from bson import ObjectId

from assets.sources.mongo_collection._keyset import BatchRange, Position, decode_id, encode_id, floor_ms
from assets.sources.mongo_collection._sensor import MONGO_SOURCE_TAG, next_attempt, run_request_for

T0 = dt.datetime(2025, 1, 1, 10, 0, 0, 123000)
T1 = dt.datetime(2025, 1, 1, 11, 0, 0, 456000)
ID = ObjectId("65e1c0000000000000000009")


def test_ids_keep_their_bson_type_and_times_their_precision() -> None:
    for value in (ID, "abc", 42):
        assert decode_id(encode_id(value)) == value
        assert type(decode_id(encode_id(value))) is type(value)
    aware = dt.datetime(2025, 1, 1, 12, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert floor_ms(aware) == dt.datetime(2025, 1, 1, 10, 0, 0, 999000)


def test_keyset_filters() -> None:
    assert Position(T0).after_filter() == {"updated_at": {"$gt": T0}}
    assert Position(T0, encode_id(ID)).after_filter() == {
        "$or": [{"updated_at": {"$gt": T0}}, {"updated_at": T0, "_id": {"$gt": ID}}]
    }
    assert Position(T1, encode_id(ID)).upto_filter() == {
        "$or": [{"updated_at": {"$lt": T1}}, {"updated_at": T1, "_id": {"$lte": ID}}]
    }


def test_sweep_covers_new_ids_without_a_usable_updated_at() -> None:
    batch = BatchRange(
        lower=Position(T0, encode_id(ID)),
        upper=Position(T1),
        sweep_from=ObjectId.from_datetime(T0.replace(tzinfo=dt.UTC)),
        sweep_until=ObjectId.from_datetime(T1.replace(tzinfo=dt.UTC)),
        max_docs=10,
    )
    sweep = batch.sweep_filter()
    assert sweep["_id"] == {"$gte": batch.sweep_from, "$lt": batch.sweep_until}
    assert sweep["$or"] == [
        {"updated_at": {"$not": {"$type": "date"}}},
        {"updated_at": {"$lt": T0.replace(microsecond=0)}},
    ]
    assert batch.combined_filter() == {"$or": [batch.key_filter(), sweep]}
    assert batch.key_filter()["$and"][0] == batch.lower.after_filter()


def test_batch_range_round_trips_through_run_config() -> None:
    batch = BatchRange(
        lower=Position(T0, encode_id(ID)),
        upper=Position(T1, encode_id("s")),
        sweep_from=None,
        sweep_until=ObjectId.from_datetime(T1.replace(tzinfo=dt.UTC)),
        max_docs=500,
        exact=False,
    )
    config = batch.to_config()
    assert all(isinstance(v, str | int | bool | type(None)) for v in config.values())
    assert BatchRange.from_config(config) == batch
    assert BatchRange.from_config({"max_docs": 5}) is None
    first = BatchRange(None, Position(T1), None, batch.sweep_until, 5)
    assert first.key_filter() == {"$and": [{"updated_at": {"$lte": T1}}]}
    assert first.sweep_filter()["$or"] == [{"updated_at": {"$not": {"$type": "date"}}}]
    assert first.token().startswith("start..")


def test_run_requests_retry_a_failed_range_under_a_new_key() -> None:
    batch = BatchRange(None, Position(T1), None, ObjectId.from_datetime(T1.replace(tzinfo=dt.UTC)), 5)
    token = batch.token()
    assert next_attempt({}, token) == 0
    assert next_attempt({"requested": token, "attempt": 0}, token) == 1
    assert next_attempt({"requested": "other", "attempt": 4}, token) == 0
    first = run_request_for(batch, source_key="mongodb:db.c", op_name="raw__usage_events", attempt=0)
    retry = run_request_for(batch, source_key="mongodb:db.c", op_name="raw__usage_events", attempt=1)
    assert first.run_key != retry.run_key
    assert first.tags[MONGO_SOURCE_TAG] == "mongodb:db.c"
    assert first.run_config == {"ops": {"raw__usage_events": {"config": batch.to_config()}}}
