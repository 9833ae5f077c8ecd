"""Where the monitor stopped reading: ``ops.system_logs_offsets`` in the warehouse.

One row per Kafka partition (``kind = 'kafka'``, source = topic, part = partition, position = next
offset) and per log file (``kind = 'file'``, source = the file's identity ``<device>:<inode>``,
part = 0, position = next byte). A position is advanced only after the documents before it were
indexed or written durably to the fallback file, in one transaction per pass, so a crash re-reads
(and, with deterministic ids, overwrites) instead of skipping. Files are keyed by identity, not
name: a log file renamed by rotation keeps its position, the new file starts at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from resources.platform_tables import PlatformTables, TableSpec, baseline, ensure_platform_tables
from resources.warehouse import WarehouseResource

SCHEMA = "ops"
TABLE = "system_logs_offsets"
KAFKA = "kafka"
FILE = "file"


@dataclass(frozen=True)
class Position:
    kind: str
    source: str
    part: int
    position: int
    path: str | None = None


# Shape unchanged since the monitor introduced it (e366a87).
OFFSETS_TABLES = PlatformTables(
    f"system_logs_monitor/{SCHEMA}.{TABLE}",
    (
        TableSpec(
            SCHEMA,
            TABLE,
            (
                ("source_kind", "VARCHAR(10) NOT NULL"),
                ("source", "TEXT NOT NULL"),
                ("part", "INTEGER NOT NULL"),
                ("next_position", "BIGINT NOT NULL"),
                ("path", "TEXT"),
                ("updated_at", "TIMESTAMP NOT NULL"),
            ),
            primary_key=("source_kind", "source", "part"),
        ),
    ),
    (baseline("ops.system_logs_offsets as created since the monitor's first version (e366a87)"),),
)


def ensure_table(warehouse: WarehouseResource) -> None:
    """Create ``ops.system_logs_offsets`` and apply its pending steps (idempotent, one transaction)."""
    ensure_platform_tables(warehouse, OFFSETS_TABLES)


def read_positions(warehouse: WarehouseResource, kind: str) -> dict[tuple[str, int], Position]:
    """(source, part) -> position of every row of ``kind`` (empty when the table does not exist)."""
    try:
        with warehouse.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f"SELECT source, part, next_position, path FROM {SCHEMA}.{TABLE} "
                    "WHERE source_kind = :kind"
                ),
                {"kind": kind},
            ).all()
    except sa.exc.ProgrammingError:  # no table yet (before the first pass)
        return {}
    return {(s, int(p)): Position(kind, s, int(p), int(n), path) for s, p, n, path in rows}


_UPSERT = sa.text(
    f"INSERT INTO {SCHEMA}.{TABLE} (source_kind, source, part, next_position, path, updated_at) "
    "VALUES (:kind, :source, :part, :position, :path, :at) ON CONFLICT (source_kind, source, part) "
    "DO UPDATE SET next_position = EXCLUDED.next_position, path = EXCLUDED.path, "
    "updated_at = EXCLUDED.updated_at"
)


def record_positions(
    warehouse: WarehouseResource,
    positions: Iterable[Position],
    forget_files_except: Mapping[str, str] | None = None,
) -> None:
    """Upsert ``positions``; with ``forget_files_except`` (identity -> path of the files seen now),
    drop the rows of files that no longer exist, in the same transaction."""
    at = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {"kind": p.kind, "source": p.source, "part": p.part, "position": p.position, "path": p.path, "at": at}
        for p in positions
    ]
    with warehouse.begin() as conn:
        if rows:
            conn.execute(_UPSERT, rows)
        if forget_files_except is not None:
            known = conn.execute(
                sa.text(f"SELECT source FROM {SCHEMA}.{TABLE} WHERE source_kind = :kind"), {"kind": FILE}
            ).scalars()
            gone = [{"kind": FILE, "source": s} for s in known if s not in forget_files_except]
            if gone:
                conn.execute(
                    sa.text(f"DELETE FROM {SCHEMA}.{TABLE} WHERE source_kind = :kind AND source = :source"),
                    gone,
                )
