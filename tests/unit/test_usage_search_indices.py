"""Pure logic of versioned indices: names, the one-request alias switch, the index specs."""

import datetime as dt

from assets.usage.index_specs import INSIGHT_INDICES
from resources.search_indices import alias_switch_actions, bulk_actions, is_version_of, version_name


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


def test_bulk_actions_take_ids_from_the_id_field() -> None:
    actions = list(bulk_actions("i", [{"k": 1}, {"k": 2}], "k"))
    assert actions == [
        {"_index": "i", "_source": {"k": 1}, "_id": "1"},
        {"_index": "i", "_source": {"k": 2}, "_id": "2"},
    ]


def test_index_specs_are_strict_and_map_every_selected_column() -> None:
    for index in INSIGHT_INDICES:
        definition = index.definition("x-")
        assert definition.alias == f"x-{index.name}"
        assert definition.mappings["dynamic"] == "strict"
        selected = index.select_sql.split(" FROM ")[0].removeprefix("SELECT ")
        columns = [part.strip().split(" AS ")[-1].split()[-1] for part in selected.split(", ")]
        assert set(columns) <= set(index.properties), index.name
        assert index.id_field in columns
