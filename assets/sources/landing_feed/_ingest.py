"""Loading one landed file into the warehouse: the body of every declared feed's raw asset.

The file of a partition is read once, safely (regular files inside the landing root only, see
:mod:`resources.landing_safety`), and its bytes are parsed by the feed's reader; valid rows, rejected
rows and the file's ledger entry are written in ONE transaction (partition-scoped, so a re-run
replaces, never duplicates). The file is archived before that transaction commits, and if it no
longer holds the bytes that were read (a writer still appending), the transaction rolls back and
the file goes back to the landing folder for a later run. A file that cannot be parsed -- any
reader error, or a line over ``AFLUENTE_LANDING_MAX_LINE_BYTES`` -- is quarantined at once with a
reason file and recorded in the ledger, never retried; the run still succeeds so the sensor and
other files keep flowing.

While the reader parses (mostly native code that releases the GIL), two worker threads hash the
bytes and create or upgrade the feed's ledger and rejects tables (:mod:`._tables`; importing the
warehouse driver and opening its first connection on the way), so neither waits for the other.
The reconciliation counts are read on the writing connection right after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from dagster import AssetExecutionContext, Failure

from assets.sources.landing_feed._tables import ensure_feed_tables
from assets.sources.landing_feed.contract import REJECT_COLUMNS, FileIngestOutcome, ParsedFile, Reader
from resources.bulk_write import existing_columns, quote_ident, write_arrow
from resources.landing_safety import BINARY_SUFFIXES, DOCUMENT_SUFFIXES, line_over_limit
from resources.landing_zone import (
    DIGEST_CHARS,
    FileChangedError,
    LandedContent,
    LandingZoneResource,
    RefusedEntryError,
    UnreadableFileError,
    digest_of_bytes,
    digest_of_key,
)
from resources.settings import LandingSettings
from resources.warehouse import WarehouseResource


@dataclass(frozen=True)
class LandingTarget:
    """Where a feed's landed files come from and go: its folder and its three tables."""

    domain: str
    folder: str
    rows_table: tuple[str, str]
    rejects_table: tuple[str, str]
    ledger_table: tuple[str, str]
    column_types: Mapping[str, str] = field(default_factory=dict)


def _with_audit(table: pa.Table, audit: Mapping[str, pa.Scalar]) -> pa.Table:
    for name, scalar in audit.items():
        table = table.append_column(name, pa.repeat(scalar, table.num_rows))
    return table


def _ledger_row(
    domain: str,
    key: str,
    digest: str,
    file_name: str,
    outcome_status: str,
    totals: tuple[int, int, int],
    reason: str | None,
    batch: str,
    at: datetime,
    details: Mapping[str, Any],
) -> pa.Table:
    return pa.table(
        {
            "ledger_key": [f"{domain}/{key}"],
            "domain": [domain],
            "partition_key": [key],
            "file_name": [file_name],
            "content_sha256": [digest],
            "status": [outcome_status],
            "rows_total": pa.array([totals[0]], pa.int64()),
            "rows_loaded": pa.array([totals[1]], pa.int64()),
            "rows_rejected": pa.array([totals[2]], pa.int64()),
            "reason": pa.array([reason], pa.string()),
            "details": [", ".join(f"{k}={v}" for k, v in details.items() if v is not None)],
            "ingest_batch": [batch],
            "ingest_at": pa.array([at], pa.timestamp("us")),
        }
    )


def _delete_partition(conn: sa.Connection, schema: str, table: str, key: str) -> None:
    if existing_columns(conn, schema, table) is not None:
        conn.execute(
            sa.text(f"DELETE FROM {quote_ident(conn, schema, table)} WHERE ingest_file_key = :key"),
            {"key": key},
        )


def _write_ledger(conn: sa.Connection, ledger: pa.Table, target: LandingTarget, key: str) -> None:
    """Replace the file's ledger entry (one row per domain/partition key)."""
    write_arrow(
        conn,
        ledger,
        *target.ledger_table,
        mode="partition",
        partition_column="ledger_key",
        partition_value=f"{target.domain}/{key}",
    )


def ingest_landing_file(
    context: AssetExecutionContext,
    *,
    target: LandingTarget,
    reader: Reader,
    warehouse: WarehouseResource,
    landing_zone: LandingZoneResource,
) -> FileIngestOutcome:
    """Load the file of ``context.partition_key`` (see module docstring)."""
    key = context.partition_key
    path = landing_zone.locate(target.folder, key)
    if path is None:
        raise Failure(
            description=(
                f"file of partition {key} not found in {landing_zone.domain_dir(target.folder)} "
                "(nor in its _archive/ or _quarantine/ folders)"
            ),
            allow_retries=False,
        )
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        content = landing_zone.read(path, key)
    except RefusedEntryError as exc:
        # Replaced by a link, FIFO, ... since it was located: nothing is read, the sensor moves it aside.
        raise Failure(
            description=f"{path.name} {exc.reason}; nothing was read, the file-drop sensor quarantines it",
            allow_retries=False,
        ) from exc
    except FileChangedError as exc:
        raise _changed(exc, path) from exc
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="landing-ingest") as pool:
        hashing = pool.submit(digest_of_bytes, content.data)
        tables = pool.submit(ensure_feed_tables, warehouse, target.ledger_table, target.rejects_table)
        parsed = _parse(context, reader, content)
        digest = hashing.result()
        tables.result()
    if digest[:DIGEST_CHARS] != digest_of_key(key):
        raise _changed(FileChangedError(f"{path.name} changed after the sensor hashed it"), path)
    batch = f"batch_{now:%Y%m%d_%H%M%S}_{digest[:8]}"
    file_name = content.name
    if isinstance(parsed, UnreadableFileError):
        ledger = _ledger_row(
            target.domain, key, digest, file_name, "quarantined", (0, 0, 0), parsed.reason, batch, now, {}
        )
        moved, counts = _commit_and_move(
            warehouse,
            target,
            key,
            lambda conn: _replace_partition(conn, target, key, ledger),
            lambda: landing_zone.quarantine(target.folder, path, digest, parsed.reason),
            (landing_zone, path, content, digest),
        )
        context.log.warning(f"{file_name} quarantined to {moved}: {parsed.reason}")
        return FileIngestOutcome("quarantined", file_name, 0, 0, 0, parsed.reason, batch, {}, counts=counts)

    loaded, rejected = parsed.rows.num_rows, parsed.rejects.num_rows
    if loaded + rejected != parsed.total_rows:
        raise Failure(
            description=f"{file_name}: reader accounted for {loaded + rejected} of {parsed.total_rows} rows",
            allow_retries=False,
        )
    audit = {
        "ingest_at": pa.scalar(now, pa.timestamp("us")),
        "ingest_batch": pa.scalar(batch),
        "ingest_source": pa.scalar(file_name[:100]),
        "ingest_file_key": pa.scalar(key),
    }
    rows = _with_audit(parsed.rows, audit)
    rejects = _with_audit(parsed.rejects.select(list(REJECT_COLUMNS)), audit)
    ledger = _ledger_row(
        target.domain,
        key,
        digest,
        file_name,
        "loaded",
        (parsed.total_rows, loaded, rejected),
        None,
        batch,
        now,
        parsed.details,
    )

    def write(conn: sa.Connection) -> None:
        for table, table_name, types in (
            (rows, target.rows_table, target.column_types),
            (rejects, target.rejects_table, {}),
        ):
            write_arrow(
                conn,
                table,
                *table_name,
                mode="partition",
                partition_column="ingest_file_key",
                partition_value=key,
                column_types=types,
            )
        _write_ledger(conn, ledger, target, key)

    _, counts = _commit_and_move(
        warehouse,
        target,
        key,
        write,
        lambda: landing_zone.archive(target.folder, path, digest),
        (landing_zone, path, content, digest),
    )
    context.log.info(f"{file_name}: {loaded} rows loaded, {rejected} rejected (batch {batch})")
    return FileIngestOutcome(
        "loaded", file_name, parsed.total_rows, loaded, rejected, None, batch, parsed.details, counts=counts
    )


def _parse(
    context: AssetExecutionContext, reader: Reader, content: LandedContent
) -> ParsedFile | UnreadableFileError:
    """Parse the bytes read; every parse error is a verdict on the file (quarantine), never retried.

    Readers parse bytes already in memory, so whatever they raise fails the same way on every
    attempt: it becomes the quarantine reason (with the traceback in the run log).
    """
    limit = LandingSettings.current().max_line_bytes
    if not content.name.lower().endswith(BINARY_SUFFIXES + DOCUMENT_SUFFIXES):
        over = line_over_limit(content.data, limit)
        if over is not None:
            return UnreadableFileError(
                f"line {over[0]} is {over[1]:,} bytes long, over the {limit:,}-byte limit "
                "(AFLUENTE_LANDING_MAX_LINE_BYTES): not a well-formed line-oriented file"
            )
    try:
        return reader(content)
    except UnreadableFileError as exc:
        return exc
    except MemoryError:
        raise
    except Exception as exc:
        context.log.exception(f"{content.name}: the reader failed")
        return UnreadableFileError(f"cannot be parsed ({type(exc).__name__}): {str(exc)[:500]}")


def _changed(exc: FileChangedError, path: Path) -> Failure:
    return Failure(
        description=(
            f"{exc}: nothing was loaded (the transaction was rolled back) and the file stays in "
            f"{path.parent}; the file-drop sensor ingests it again once it has settled"
        ),
        allow_retries=False,
    )


def _replace_partition(conn: sa.Connection, target: LandingTarget, key: str, ledger: pa.Table) -> None:
    _delete_partition(conn, *target.rows_table, key)
    _delete_partition(conn, *target.rejects_table, key)
    _write_ledger(conn, ledger, target, key)


def _commit_and_move(
    warehouse: WarehouseResource,
    target: LandingTarget,
    key: str,
    write: Callable[[sa.Connection], None],
    move: Callable[[], Path],
    read: tuple[LandingZoneResource, Path, LandedContent, str],
) -> tuple[Path, dict[str, int]]:
    """Write, move the file (archive/quarantine), check it still holds what was read, then commit.

    The move happens before the commit so a writer still appending is caught by the check: then
    the transaction rolls back and the file goes back to the landing folder, as on any failure.
    """
    landing_zone, path, content, digest = read
    moved: Path | None = None
    with warehouse.connect() as conn:
        try:
            with conn.begin():
                write(conn)
                moved = move()
                landing_zone.verify_unchanged(moved, content, digest)
        except FileChangedError as exc:
            landing_zone.restore(moved or path, path)
            raise _changed(exc, path) from exc
        except BaseException:
            if moved is not None:
                landing_zone.restore(moved, path)
            raise
        counts = _reconcile_counts(conn, target, key)
    return moved, counts


def _reconcile_counts(conn: sa.Connection, target: LandingTarget, key: str) -> dict[str, int]:
    """Counts that prove nothing was dropped: rows + rejects in the warehouse vs the file's total."""
    rows_q = quote_ident(conn, *target.rows_table)
    rej_q = quote_ident(conn, *target.rejects_table)
    ledger_q = quote_ident(conn, *target.ledger_table)
    params = {"key": key, "ledger_key": f"{target.domain}/{key}"}
    counts = {"rows_total": 0, "rows_in_table": 0, "rejects_in_table": 0}
    total = conn.execute(
        sa.text(f"SELECT rows_total FROM {ledger_q} WHERE ledger_key = :ledger_key"), params
    ).scalar()
    counts["rows_total"] = int(total or 0)
    for name, qualified, table in (
        ("rows_in_table", rows_q, target.rows_table),
        ("rejects_in_table", rej_q, target.rejects_table),
    ):
        if existing_columns(conn, *table) is not None:
            counts[name] = conn.execute(
                sa.text(f"SELECT COUNT(*) FROM {qualified} WHERE ingest_file_key = :key"), params
            ).scalar_one()  # COUNT(*) without GROUP BY: always exactly one row
    return counts
