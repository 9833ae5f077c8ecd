"""Pure logic of the system_logs monitor: fallback bound and rotation, ids, index names, topic list."""

import datetime as dt
import json
from pathlib import Path

import pytest

from assets.monitor._documents import daily_index, event_document, index_day, log_document, log_line_id
from assets.monitor._fallback import FallbackSpool
from assets.monitor._pass import resolve_topics


def _doc(number: int) -> tuple[str, dict[str, object]]:
    return "system_logs-2024.05.01", {"doc_id": f"t-0-{number}", "message": "x" * 150}


def test_fallback_rotates_by_size_and_drops_beyond_its_bound_with_a_counter(tmp_path: Path) -> None:
    spool = FallbackSpool(tmp_path / "fallback", max_bytes=40_000)
    spooled, dropped = spool.append(_doc(n) for n in range(1000))
    assert spooled > 0 and dropped == 1000 - spooled
    assert spool.size() <= 40_000
    segments = spool.segments()
    assert len(segments) >= 9, "rotated at a tenth of the bound"
    assert all(path.stat().st_size <= spool.segment_bytes for path in segments)
    assert spool.backlog().documents == spooled
    assert spool.dropped_total() == dropped
    # Still full: every further document is dropped and the counter keeps growing.
    assert spool.append([_doc(5000)]) == (0, 1)
    assert spool.backlog().dropped_total == dropped + 1


def test_unreadable_lines_are_reported_with_their_reason(tmp_path: Path) -> None:
    spool = FallbackSpool(tmp_path, max_bytes=1_000_000)
    spool.append([_doc(1), _doc(2)])
    (segment,) = spool.segments()
    with segment.open("ab") as handle:
        handle.write(b'{"index": "system_logs-2024.05.01", "doc": {"doc_id"')  # torn by a crash
    documents, unreadable = spool.read_segment(segment)
    assert [doc["doc_id"] for _, doc in documents] == ["t-0-1", "t-0-2"]
    assert len(unreadable) == 1 and "unreadable line" in unreadable[0][0]
    assert spool.reject("corrupt", unreadable) == 1
    kept = json.loads((tmp_path / "rejected" / "corrupt.jsonl").read_text())
    assert kept["document"].startswith('{"index"')


def test_fallback_bound_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SYSTEM_LOGS_FALLBACK_MAX_BYTES"):
        FallbackSpool(tmp_path, max_bytes=0)


def test_daily_index_names_round_trip_and_other_names_are_ignored() -> None:
    day = dt.date(2024, 2, 29)
    assert daily_index("system_logs", day) == "system_logs-2024.02.29"
    assert index_day("system_logs", "system_logs-2024.02.29") == day
    assert index_day("system_logs", "system_logs-2024.02.30") is None
    assert index_day("system_logs", "other-2024.02.29") is None
    assert index_day("system_logs", "system_logs-x-2024.02.29") is None


def test_event_ids_are_kafka_coordinates_and_the_day_is_the_kafka_timestamp() -> None:
    stamp = int(dt.datetime(2024, 5, 1, 23, 59, tzinfo=dt.UTC).timestamp() * 1000)
    doc = event_document("user_events", 2, 41, stamp, b"u1", b'{"event_type": "usuario_criado"}')
    assert doc["doc_id"] == "user_events-2-41" and doc["@timestamp"].startswith("2024-05-01T23:59")
    assert doc["event_type"] == "usuario_criado" and doc["key"] == "u1"
    plain = event_document("t", 0, 0, stamp, None, b"\xffnot json")
    assert "body" not in plain and plain["raw"].endswith("not json")


def test_log_line_ids_depend_on_file_identity_and_position_not_on_its_name() -> None:
    line = b'{"ts": "2024-05-01T10:00:00+00:00", "level": "INFO", "message": "hi"}\n'
    before = log_document("/logs/api.jsonl", "64:1234", 0, line)
    after_rename = log_document("/logs/api.jsonl.1", "64:1234", 0, line)
    assert before["doc_id"] == after_rename["doc_id"] == log_line_id("64:1234", 0, line)
    assert log_line_id("64:1234", 71, line) != before["doc_id"]
    assert before["@timestamp"].startswith("2024-05-01T10:00") and before["level"] == "INFO"


def test_topics_are_setting_names_or_topic_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMERCE_KAFKA_TOPIC", "shop.events")
    assert resolve_topics("COMMERCE_KAFKA_TOPIC, user_events,,shop.events,response_events") == (
        "shop.events",
        "user_events",
        "response_events",
    )
