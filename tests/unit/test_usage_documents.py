"""Pure logic of the usage domain: the document contract, the file reader, the generator."""

import datetime as dt
import json
from pathlib import Path

import pytest
from bson import ObjectId, json_util

from assets.usage.documents import USAGE_ROW_SCHEMA, validate_document, validate_documents
from assets.usage.file_reader import read_usage_file
from generators.usage import DEFECTS, generate_usage_documents
from resources.landing_zone import UnreadableFileError

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def doc(**overrides: object) -> dict:
    base = {
        "_id": ObjectId("65e1c0000000000000000001"),
        "user_id": "u1",
        "ide": "vscode",
        "model": "gpt-4o",
        "input_tokens": 10,
        "output_tokens": 5,
        "created_at": NOW - dt.timedelta(hours=1),
        "updated_at": NOW,
        "prompt": "hi",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def test_valid_document_becomes_a_typed_row() -> None:
    row, reasons = validate_document(
        doc(created_at=dt.datetime(2025, 3, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=-3))))
    )
    assert reasons == []
    assert row["event_id"] == "65e1c0000000000000000001"
    assert row["created_at"] == dt.datetime(2025, 3, 1, 12)  # converted to naive UTC
    assert row["source_updated_at"] == NOW.replace(tzinfo=None)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"user_id": ...}, "user_id: missing"),
        ({"user_id": "  "}, "user_id: empty"),
        ({"input_tokens": "12"}, "input_tokens: expected integer, got str"),
        ({"input_tokens": True}, "input_tokens: expected integer, got bool"),
        ({"output_tokens": 1.5}, "output_tokens: expected integer, got 1.5"),
        ({"output_tokens": -1}, "output_tokens: must be >= 0"),
        ({"created_at": "2025-01-01T00:00:00Z"}, "created_at: expected date, got str"),
        ({"updated_at": ...}, "updated_at: missing"),
        ({"prompt": 3}, "prompt: expected string, got int"),
        ({"_id": ...}, "_id: missing"),
    ],
)
def test_contract_violations_are_explained(overrides: dict, reason: str) -> None:
    row, reasons = validate_document(doc(**overrides))
    assert row is None
    assert any(r.startswith(reason) for r in reasons), reasons


def test_integral_floats_are_counts_and_files_may_use_iso_dates() -> None:
    row, _ = validate_document(doc(input_tokens=12.0))
    assert row["input_tokens"] == 12
    row, reasons = validate_document(doc(created_at="2025-01-01T10:00:00Z"), date_strings=True)
    assert reasons == [] and row["created_at"] == dt.datetime(2025, 1, 1, 10)
    _, reasons = validate_document(doc(created_at="yesterday"), date_strings=True)
    assert reasons == ["created_at: not an ISO-8601 timestamp: 'yesterday'"]


def test_batch_keeps_latest_version_and_accounts_for_every_document() -> None:
    old = doc(output_tokens=1)
    new = doc(output_tokens=2, updated_at=NOW + dt.timedelta(minutes=1))
    other = doc(_id=ObjectId("65e1c0000000000000000002"))
    bad = doc(_id=ObjectId("65e1c0000000000000000003"), model=None)
    batch = validate_documents([old, other, new, bad, "not a document"])
    assert batch.rows.schema == USAGE_ROW_SCHEMA
    assert batch.total == 5
    assert batch.rows.column("output_tokens").to_pylist() == [2, 5]
    reasons = batch.rejects.column("reason").to_pylist()
    assert reasons[0].startswith("superseded")  # the older version, rejected when the newer one came
    assert reasons[1].startswith("model: missing")
    assert reasons[2].startswith("document is not an object")
    assert batch.rejects.column("position").to_pylist() == [0, 3, 4]
    raw = json.loads(batch.rejects.column("raw_content")[1].as_py())
    assert raw["_id"] == {"$oid": "65e1c0000000000000000003"}


def test_reader_accepts_jsonl_arrays_and_wrapped_arrays(tmp_path: Path) -> None:
    good = json_util.dumps(doc(), json_options=json_util.RELAXED_JSON_OPTIONS)
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(
        f"{good}\n\n{{broken\n" + json.dumps({"_id": "x2", "user_id": "u"}) + "\n", encoding="utf-8"
    )
    parsed = read_usage_file(jsonl)
    assert (parsed.rows.num_rows, parsed.rejects.num_rows, parsed.total_rows) == (1, 2, 3)
    assert parsed.rejects.column("source_line").to_pylist() == [3, 4]
    assert parsed.rejects.column("reason")[0].as_py().startswith("invalid JSON")
    wrapped = tmp_path / "b.json"
    wrapped.write_text(json.dumps({"events": [json.loads(good)]}), encoding="utf-8")
    assert read_usage_file(wrapped).details == {"layout": "json_object.events"}


@pytest.mark.parametrize("content", ["", "id,user\n1,2\n", "[{oops"])
def test_unreadable_files_are_quarantined(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UnreadableFileError):
        read_usage_file(path)


def test_generator_is_deterministic_and_breaks_an_exact_share() -> None:
    first = [d for c in generate_usage_documents(400, seed=3, bad_share=0.05, updated_at=NOW) for d in c]
    again = [d for c in generate_usage_documents(400, seed=3, bad_share=0.05, updated_at=NOW) for d in c]
    strip = [{k: v for k, v in d.items() if k != "_id"} for d in first]
    assert strip == [{k: v for k, v in d.items() if k != "_id"} for d in again]
    batch = validate_documents(first)
    assert batch.rejects.num_rows == 20 and batch.rows.num_rows == 380
    assert len(DEFECTS) == 8
    lengths = [len(d["prompt"]) for d in first if isinstance(d.get("prompt"), str)]
    assert min(lengths) > 20 and max(lengths) > 300
    assert all(
        d["input_tokens"] > 0
        for d in first
        if isinstance(d.get("input_tokens"), int) and d["input_tokens"] >= 0
    )


def test_generator_bursts_concentrate_tokens_on_few_user_days() -> None:
    docs = [d for c in generate_usage_documents(2000, users=50, days=20, seed=4, bursts=2) for d in c]
    per_day: dict = {}
    for d in docs:
        key = (d["user_id"], d["created_at"].date())
        per_day[key] = per_day.get(key, 0) + d["input_tokens"] + d["output_tokens"]
    top = sorted(per_day.values(), reverse=True)
    assert top[1] > 10 * sorted(per_day.values())[len(per_day) // 2]
