"""The commerce clickstream generator: shapes, determinism, exact malformed share, JSONL files."""

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from assets.commerce.decode import decode_events
from generators.commerce import BAD_KINDS, generate_events, main, write_jsonl_files
from generators.commerce_catalogue import build_catalogue

START = dt.datetime(2024, 5, 1)


def test_events_have_the_shape_of_their_type() -> None:
    events = [e.event for e in generate_events(3000, seed=1, start=START)]
    types = Counter(e["event_type"] for e in events)
    assert set(types) == {"page_view", "search", "add_to_cart", "remove_from_cart", "purchase"}
    for event in events:
        assert {"event_id", "event_type", "timestamp", "user_id", "session_id"} <= set(event)
        kind = event["event_type"]
        assert ("product" in event) == (kind != "search")
        assert ("query" in event) == (kind == "search")
        if kind == "purchase":
            price = event["product"]["price"]
            assert event["total_amount"] == round(price * event["quantity"], 2)
            assert event["payment_method"]


def test_same_seed_same_events_and_users_keep_their_key() -> None:
    first = list(generate_events(500, seed=7, start=START))
    again = list(generate_events(500, seed=7, start=START))
    assert [e.value for e in first] == [e.value for e in again]
    assert all(e.key == e.event["user_id"] for e in first if e.valid)


def test_exact_malformed_share_and_every_one_is_rejected() -> None:
    items = list(generate_events(2000, seed=3, bad_share=0.05, start=START))
    bad = [i for i, e in enumerate(items) if not e.valid]
    assert len(bad) == 100
    assert {items[i].bad_kind for i in bad} == set(BAD_KINDS)
    decoded = decode_events([e.value for e in items])
    assert decoded.dead_rows.tolist() == bad
    assert decoded.events.num_rows == 1900


def test_catalogue_prices_stay_in_category_ranges() -> None:
    catalogue = build_catalogue(80)
    assert len({p.id for p in catalogue}) == 80
    assert all(p.price > 0 for p in catalogue)


def test_jsonl_files_one_event_per_line(tmp_path: Path) -> None:
    report, paths = write_jsonl_files(
        generate_events(250, seed=2, start=START), tmp_path, files=3, per_file=100, compress=False
    )
    assert report.sent == 250 and len(paths) == 3
    lines = [line for p in paths for line in p.read_text().splitlines()]
    assert len(lines) == 250 and all(json.loads(line)["event_id"] for line in lines)
    assert not list(tmp_path.glob("*.part"))


def test_cli_writes_files_and_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--events", "50", "--out", str(tmp_path), "--no-progress", "--bad-share", "0.1"]) == 0
    assert "sent 50 events (5 malformed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--events", "5"])  # no sink
    with pytest.raises(SystemExit):
        main(["--events", "5", "--out", str(tmp_path), "--bad-share", "2"])


def test_cli_days_spreads_the_events_over_the_last_days(tmp_path: Path) -> None:
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert main(["--events", "400", "--out", str(tmp_path), "--no-progress", "--days", "3"]) == 0
    stamps = sorted(
        dt.datetime.fromisoformat(json.loads(line)["timestamp"])
        for path in tmp_path.glob("*.jsonl")
        for line in path.read_text().splitlines()
    )
    assert len(stamps) == 400
    assert {stamp.date() for stamp in stamps} >= {(started - dt.timedelta(days=d)).date() for d in (1, 2)}
    assert started - dt.timedelta(days=3, minutes=1) <= stamps[0] < started - dt.timedelta(days=2, hours=23)
    assert started - dt.timedelta(minutes=20) <= stamps[-1] <= dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for bad in (["--days", "0"], ["--days", "2", "--start", "2024-01-01T00:00:00"]):
        with pytest.raises(SystemExit):
            main(["--events", "5", "--out", str(tmp_path), *bad])
