"""Pure logic of versioned indices: names, the one-request alias switch, the index specs."""

import datetime as dt
import json
from decimal import Decimal

from resources.search_bulk import ndjson_chunks
from resources.search_indices import alias_switch_actions, is_version_of, version_name
from resources.usage_index_specs import INSIGHT_INDICES


def test_version_names_sort_by_build_time_and_belong_to_their_alias() -> None:
    early = version_name("p-usage_daily", dt.datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC))
    late = version_name("p-usage_daily", dt.datetime(2025, 1, 2, 3, 4, 5, 7, tzinfo=dt.UTC))
    assert early == "p-usage_daily_v20250102t030405000006" and early < late
    assert is_version_of("p-usage_daily", early)
    assert not is_version_of("p-usage", early)
    assert not is_version_of("p-usage_daily", "p-usage_daily_vip")


def test_switch_is_one_request_detaching_every_version() -> None:
    actions = alias_switch_actions("a", "a_v20250101t000000000000")
    assert actions == [
        {"remove": {"index": "a_v*", "alias": "a", "must_exist": False}},
        {"add": {"index": "a_v20250101t000000000000", "alias": "a"}},
    ]
    squatted = alias_switch_actions("a", "a_v1", replace_concrete=True)
    assert {"remove_index": {"index": "a"}} in squatted


def _lines(body: bytes) -> list[dict]:
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.decode().splitlines()]


def test_ndjson_chunks_encode_index_actions_with_ids_from_the_id_field() -> None:
    docs = [{"k": 1, "price": Decimal("2.50"), "text": 'quote " and ünïcode\nline'}, {"k": 2, "price": None}]
    (chunk,) = ndjson_chunks("i", docs, "k")
    assert chunk.documents == 2
    assert _lines(chunk.body) == [
        {"index": {"_index": "i", "_id": "1"}},
        {"k": 1, "price": 2.5, "text": 'quote " and ünïcode\nline'},
        {"index": {"_index": "i", "_id": "2"}},
        {"k": 2, "price": None},
    ]
    (no_ids,) = ndjson_chunks("i", docs[:1], None)
    assert _lines(no_ids.body)[0] == {"index": {"_index": "i"}}


def test_ndjson_chunks_split_by_document_count_and_by_bytes() -> None:
    docs = [{"n": n, "pad": "x" * 100} for n in range(10)]
    by_count = list(ndjson_chunks("i", docs, "n", chunk_docs=4))
    assert [c.documents for c in by_count] == [4, 4, 2]
    by_bytes = list(ndjson_chunks("i", docs, "n", max_chunk_bytes=300))
    assert all(len(c.body) <= 300 for c in by_bytes) and sum(c.documents for c in by_bytes) == 10
    # A document larger than the byte limit still goes, alone in its chunk.
    (big,) = ndjson_chunks("i", [{"n": 0, "pad": "y" * 1000}], "n", max_chunk_bytes=300)
    assert big.documents == 1
    sent = [line["n"] for c in by_count + by_bytes for line in _lines(c.body) if "n" in line]
    assert sent == list(range(10)) * 2


def test_index_specs_are_strict_and_map_every_selected_column() -> None:
    for index in INSIGHT_INDICES:
        definition = index.definition("x-")
        assert definition.alias == f"x-{index.name}"
        assert definition.mappings["dynamic"] == "strict"
        selected = index.select_sql.split(" FROM ")[0].removeprefix("SELECT ")
        columns = [part.strip().split(" AS ")[-1].split()[-1] for part in selected.split(", ")]
        assert set(columns) <= set(index.properties), index.name
        assert index.id_field in columns
