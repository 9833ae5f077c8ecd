"""Offset-range arithmetic and the Kafka sensor's planning (pure logic)."""

import pytest

from assets.sources.kafka_topic._ledger import (
    OffsetRange,
    chunk_range,
    covered_count,
    format_ranges,
    merge_ranges,
    parse_ranges,
    subtract_ranges,
)
from assets.sources.kafka_topic._sensor import plan_kafka_runs


def test_merge_subtract_and_chunk() -> None:
    assert merge_ranges([(5, 10), (0, 3), (3, 5), (20, 20), (12, 15)]) == [(0, 10), (12, 15)]
    assert subtract_ranges((0, 100), [(10, 20), (15, 30), (90, 120)]) == [(0, 10), (30, 90)]
    assert subtract_ranges((0, 10), [(0, 10)]) == []
    assert subtract_ranges((5, 10), []) == [(5, 10)]
    assert covered_count((0, 100), [(10, 20), (95, 200)]) == 15
    assert chunk_range((10, 35), 10) == [(10, 20), (20, 30), (30, 35)]


def test_format_and_parse_round_trip() -> None:
    ranges = [OffsetRange(2, 50, 80), OffsetRange(0, 0, 100)]
    text = format_ranges(ranges)
    assert text == "0:0-100,2:50-80"
    assert parse_ranges(text) == sorted(ranges)
    with pytest.raises(ValueError):
        parse_ranges("0:10-5")


def test_plan_covers_exactly_the_missing_offsets() -> None:
    plan = plan_kafka_runs(
        {0: (0, 250), 1: (0, 40), 2: (100, 130)},
        covered={0: [(0, 50)], 2: [(0, 110)]},
        in_flight={1: [(0, 10)]},
        max_events_per_run=100,
        max_runs=10,
    )
    planned = sorted(r for run in plan.runs for r in run.ranges)
    assert planned == [
        OffsetRange(0, 50, 150),
        OffsetRange(0, 150, 250),
        OffsetRange(1, 10, 40),
        OffsetRange(2, 110, 130),
    ]
    assert plan.missing_offsets == 200 + 30 + 20
    assert all(run.offsets <= 100 for run in plan.runs)
    # The two small ranges of partitions 1 and 2 share one run.
    assert any(len(run.ranges) == 2 for run in plan.runs)


def test_plan_is_deterministic_and_bounded_per_tick() -> None:
    args = ({0: (0, 1000), 1: (0, 1000)}, {}, {})
    first = plan_kafka_runs(*args, max_events_per_run=100, max_runs=3)
    again = plan_kafka_runs(*args, max_events_per_run=100, max_runs=3)
    assert [r.range_key("t") for r in first.runs] == [r.range_key("t") for r in again.runs]
    assert len(first.runs) == 3 and first.deferred_offsets == 2000 - 300
    # Round-robin: consecutive runs alternate partitions so concurrent runs spread.
    assert [run.ranges[0].partition for run in first.runs] == [0, 1, 0]


def test_plan_skips_offsets_deleted_by_retention_and_new_partitions_are_planned() -> None:
    plan = plan_kafka_runs(
        {0: (500, 600), 3: (0, 5)}, {0: [(0, 100)]}, {}, max_events_per_run=1000, max_runs=5
    )
    assert sorted(r for run in plan.runs for r in run.ranges) == [
        OffsetRange(0, 500, 600),
        OffsetRange(3, 0, 5),
    ]


def test_nothing_missing_plans_nothing() -> None:
    plan = plan_kafka_runs({0: (0, 10)}, {0: [(0, 10)]}, {}, max_events_per_run=5, max_runs=5)
    assert plan.runs == [] and plan.missing_offsets == 0
