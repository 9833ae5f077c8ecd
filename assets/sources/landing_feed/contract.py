"""What a landing-file feed asks of a domain: the reader's result and the hook signatures.

A declared feed names a reader (``module:attr``) taking the :class:`LandedContent` of one file and
returning a :class:`ParsedFile`; it raises :class:`UnreadableFileError` (or anything else) for a
file that cannot be parsed, which is then quarantined. Optional hooks run around the load:
``before_ingest(warehouse)`` prepares tables, ``after_ingest(context, outcome)`` may log events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from dagster import AssetExecutionContext, AssetKey, AssetMaterialization

from resources.landing_zone import LandedContent, UnreadableFileError
from resources.warehouse import WarehouseResource

__all__ = [
    "LANDING_FILE_TAG",
    "REJECT_COLUMNS",
    "AfterIngest",
    "BeforeIngest",
    "FileIngestOutcome",
    "LandedContent",
    "ParsedFile",
    "Reader",
    "UnreadableFileError",
    "record_writes_to",
]

# Run tag carrying the landed file's path (one run at a time per file: dagster.yaml concurrency).
LANDING_FILE_TAG = "afluente/landing_file"

REJECT_COLUMNS = ("source_line", "reason", "raw_content")


@dataclass(frozen=True)
class ParsedFile:
    """What a domain reader returns: valid rows, rejected rows (source_line, reason, raw_content)."""

    rows: pa.Table
    rejects: pa.Table
    total_rows: int
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileIngestOutcome:
    """What loading one file did, handed to ``after_ingest`` and reported as metadata."""

    status: str
    file_name: str
    rows_total: int
    rows_loaded: int
    rows_rejected: int
    reason: str | None
    ingest_batch: str
    details: Mapping[str, Any]
    # Proof that nothing was dropped, read after the commit: rows_total (ledger) vs rows_in_table
    # + rejects_in_table.
    counts: Mapping[str, int]

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "status": self.status,
            "file": self.file_name,
            "rows_total": self.rows_total,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "ingest_batch": self.ingest_batch,
        }
        if self.reason:
            meta["quarantine_reason"] = self.reason
        meta.update({k: str(v) for k, v in self.details.items() if v is not None})
        return meta


Reader = Callable[[LandedContent], ParsedFile]
BeforeIngest = Callable[[WarehouseResource], None]
AfterIngest = Callable[[AssetExecutionContext, FileIngestOutcome], None]


def record_writes_to(
    context: AssetExecutionContext, outcome: FileIngestOutcome, rows_key: AssetKey, rejects_key: AssetKey
) -> None:
    """For a feed whose rows land in another source's tables (e.g. a Kafka topic's raw and dead-letter
    tables): record a materialization of those assets after a loaded file, so their downstream reacts
    to both sources alike. Call it from the feed's ``after_ingest`` hook."""
    if outcome.status != "loaded":
        return
    for key, rows in ((rows_key, outcome.rows_loaded), (rejects_key, outcome.rows_rejected)):
        context.log_event(
            AssetMaterialization(
                asset_key=key,
                description=f"rows of landed file {outcome.file_name}",
                metadata={"source": "landed_file", "partition": context.partition_key, "rows": rows},
            )
        )
