"""The Kafka offset ledger: which offsets of which partitions are already in the warehouse.

The ledger lives in the warehouse (``raw.kafka_offsets`` by default, one table for every source, keyed
by pipeline), next to the rows, and is updated in the
same transaction as they are: a batch is either loaded *and* recorded, or neither. Kafka consumer
group offsets are never used, so a crash between "rows written" and "offset committed" cannot
happen. Rows are covered ranges ``[start_offset, next_offset)``; adjacent ranges are merged when a
batch commits, so a partition consumed in order is a single row whose ``next_offset`` is the
classic "committed offset".

Pure range arithmetic is kept separate (and unit-tested) from the SQL that reads and writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from assets.sources.kafka_topic._tables import TopicTables
from resources.bulk_write import quote_ident

Range = tuple[int, int]  # [start, end) offsets


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets ``[start_offset, end_offset)`` of one partition."""

    partition: int
    start_offset: int
    end_offset: int

    @property
    def size(self) -> int:
        return self.end_offset - self.start_offset

    def label(self) -> str:
        return f"{self.partition}:{self.start_offset}-{self.end_offset}"


def format_ranges(ranges: Iterable[OffsetRange]) -> str:
    """``0:0-100,2:50-80``: the compact form used in run keys and tags."""
    return ",".join(r.label() for r in sorted(ranges))


def parse_ranges(text: str) -> list[OffsetRange]:
    """Inverse of :func:`format_ranges` (raises ValueError on malformed input)."""
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, _, span = part.partition(":")
        start, _, end = span.partition("-")
        item = OffsetRange(int(partition), int(start), int(end))
        if item.start_offset < 0 or item.end_offset < item.start_offset:
            raise ValueError(f"bad offset range {part!r}")
        ranges.append(item)
    return ranges


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Union of ranges as sorted, disjoint, non-adjacent ranges (empty ones dropped)."""
    merged: list[list[int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def subtract_ranges(wanted: Range, covered: Iterable[Range]) -> list[Range]:
    """Parts of ``wanted`` not in ``covered``."""
    start, end = wanted
    gaps: list[Range] = []
    cursor = start
    for c_start, c_end in merge_ranges(covered):
        if c_end <= cursor:
            continue
        if c_start >= end:
            break
        if c_start > cursor:
            gaps.append((cursor, min(c_start, end)))
        cursor = max(cursor, c_end)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def chunk_range(span: Range, max_size: int) -> list[Range]:
    """Split ``span`` into pieces of at most ``max_size``, aligned on the span's start."""
    start, end = span
    return [(s, min(s + max_size, end)) for s in range(start, end, max(1, max_size))]


def covered_count(span: Range, covered: Iterable[Range]) -> int:
    """How many offsets of ``span`` are already covered."""
    return (span[1] - span[0]) - sum(e - s for s, e in subtract_ranges(span, covered))


# ------------------------------------------------------------------------------------------------
# SQL


def read_covered(
    conn: sa.Connection, tables: TopicTables, topic: str, partitions: Sequence[int] | None = None
) -> dict[int, list[Range]]:
    """Covered ranges per partition of the source's pipeline from its offsets ledger."""
    table = quote_ident(conn, *tables.offsets)
    sql = (
        f"SELECT kafka_partition, start_offset, next_offset FROM {table} "
        "WHERE pipeline = :pipeline AND topic = :topic"
    )
    params: dict[str, object] = {"pipeline": tables.pipeline, "topic": topic}
    statement = sa.text(sql + " ORDER BY kafka_partition, start_offset")
    if partitions is not None:
        statement = sa.text(
            sql + " AND kafka_partition IN :partitions ORDER BY kafka_partition, start_offset"
        ).bindparams(sa.bindparam("partitions", expanding=True))
        params["partitions"] = list(partitions) or [-1]
    covered: dict[int, list[Range]] = {}
    for partition, start, end in conn.execute(statement, params):
        covered.setdefault(int(partition), []).append((int(start), int(end)))
    return covered


def lock_partitions(conn: sa.Connection, pipeline: str, topic: str, partitions: Iterable[int]) -> None:
    """Serialize writers of the same partitions until the transaction ends (PostgreSQL).

    DuckDB allows one writing process per file and aborts conflicting transactions, so it needs
    no explicit lock.
    """
    if conn.dialect.name != "postgresql":
        return
    for partition in sorted(set(partitions)):
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"afluente.kafka/{pipeline}/{topic}/{partition}"},
        )


def record_ranges(
    conn: sa.Connection,
    tables: TopicTables,
    topic: str,
    newly_covered: Mapping[int, Sequence[Range]],
    at: datetime | None = None,
) -> None:
    """Add covered ranges and merge them with adjacent/overlapping rows of their partitions."""
    table = quote_ident(conn, *tables.offsets)
    pipeline = tables.pipeline
    at = at or datetime.now(UTC).replace(tzinfo=None)
    for partition, spans in sorted(newly_covered.items()):
        spans = merge_ranges(spans)
        if not spans:
            continue
        low, high = spans[0][0], spans[-1][1]
        key = {"pipeline": pipeline, "topic": topic, "partition": partition}
        touching = [
            (int(s), int(e))
            for s, e in conn.execute(
                sa.text(
                    f"SELECT start_offset, next_offset FROM {table} WHERE pipeline = :pipeline "
                    "AND topic = :topic AND kafka_partition = :partition "
                    "AND next_offset >= :low AND start_offset <= :high"
                ),
                {**key, "low": low, "high": high},
            )
        ]
        merged = merge_ranges([*touching, *spans])
        if touching:
            conn.execute(
                sa.text(
                    f"DELETE FROM {table} WHERE pipeline = :pipeline AND topic = :topic "
                    "AND kafka_partition = :partition AND start_offset IN :starts"
                ).bindparams(sa.bindparam("starts", expanding=True)),
                {**key, "starts": [s for s, _ in touching]},
            )
        conn.execute(
            sa.text(
                f"INSERT INTO {table} (pipeline, topic, kafka_partition, start_offset, next_offset, "
                "updated_at) VALUES (:pipeline, :topic, :partition, :start, :end, :at)"
            ),
            [{**key, "start": s, "end": e, "at": at} for s, e in merged],
        )


@dataclass(frozen=True)
class BatchAudit:
    partition: int
    start_offset: int
    next_offset: int
    events_loaded: int
    dead_letters: int
    already_loaded: int


def record_batches(
    conn: sa.Connection,
    tables: TopicTables,
    topic: str,
    run_id: str,
    audits: Sequence[BatchAudit],
    at: datetime,
) -> None:
    """Append the run's per-range counts to the batches table (a handful of rows)."""
    if not audits:
        return
    table = quote_ident(conn, *tables.batches)
    conn.execute(
        sa.text(
            f"INSERT INTO {table} (pipeline, topic, kafka_partition, start_offset, next_offset, "
            "events_loaded, dead_letters, already_loaded, run_id, committed_at) VALUES (:pipeline, "
            ":topic, :partition, :start, :end, :events, :dead, :already, :run_id, :at)"
        ),
        [
            {
                "pipeline": tables.pipeline,
                "topic": topic,
                "partition": a.partition,
                "start": a.start_offset,
                "end": a.next_offset,
                "events": a.events_loaded,
                "dead": a.dead_letters,
                "already": a.already_loaded,
                "run_id": run_id,
                "at": at,
            }
            for a in audits
        ],
    )
