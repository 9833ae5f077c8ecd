"""One pass of the monitor: replay the fallback file, index what is new, apply the retention.

Order of a pass, and why nothing is lost or doubled:

1. if the search engine answers, the fallback segments are sent oldest first; a segment is deleted
   only after every document of it was indexed (or rejected for good, with its reason);
2. new Kafka messages and log lines are read from the positions in ``ops.system_logs_offsets``
   (at most ``max_docs_per_run``), indexed, or, when the engine does not answer, appended to the
   fallback file and ``fsync``ed;
3. only then the new positions are recorded (one transaction), so a crash before it re-reads the
   same documents, and their deterministic ids make the second write an overwrite;
4. daily indices older than the retention are deleted (an engine gone away by then only postpones
   this to the next pass: the documents are already safe, the pass does not fail).

A file lock in the fallback directory keeps two passes from interleaving on one machine (the sensor
requests a run only when none is in flight; the lock covers a run launched by hand meanwhile).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.monitor._documents import daily_index, document_day
from assets.monitor._fallback import Backlog, FallbackSpool, Spooled
from assets.monitor._index import EngineUnavailableError, apply_retention, ensure_template, write_documents
from assets.monitor._ledger import FILE, KAFKA, ensure_table, read_positions, record_positions
from assets.monitor._sources import matching_files, read_log_files, read_topics
from resources.kafka import KafkaResource
from resources.search import SearchResource
from resources.settings import SETTINGS, MonitorSettings, setting
from resources.warehouse import WarehouseResource

_REGISTERED = {item.name for item in SETTINGS}
_LOCK_WAIT_S = 120.0


def resolve_topics(text: str) -> tuple[str, ...]:
    """``SYSTEM_LOGS_TOPICS`` entries: a registered setting's name stands for its value, anything else
    is a topic name; empty values and repeats are left out."""
    topics: list[str] = []
    for entry in (part.strip() for part in text.split(",")):
        topic = str(setting(entry)).strip() if entry in _REGISTERED else entry
        if topic and topic not in topics:
            topics.append(topic)
    return tuple(topics)


@dataclass(frozen=True)
class MonitorConfig:
    """What a pass indexes, where, and its bounds (``SYSTEM_LOGS_*`` settings)."""

    alias: str
    topics: tuple[str, ...]
    log_patterns: tuple[str, ...]
    retention_days: int
    fallback_dir: Path
    fallback_max_bytes: int
    max_docs_per_run: int

    @classmethod
    def from_settings(cls) -> MonitorConfig:
        """The configuration in the environment now (read at run and tick time)."""
        settings = MonitorSettings.current()
        return cls(
            alias=settings.alias.strip(),
            topics=resolve_topics(settings.topics),
            log_patterns=tuple(p.strip() for p in settings.log_files.split(",") if p.strip()),
            retention_days=settings.retention_days,
            fallback_dir=Path(settings.fallback_dir),
            fallback_max_bytes=settings.fallback_max_bytes,
            max_docs_per_run=settings.max_docs_per_run,
        )

    def spool(self) -> FallbackSpool:
        return FallbackSpool(self.fallback_dir, self.fallback_max_bytes)


@dataclass
class PassReport:
    """What one pass did; ``metadata()`` is the asset's materialization metadata."""

    engine_reachable: bool = False
    indexed: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    rejected: int = 0
    expired_offsets: int = 0
    kafka_lag: int = 0
    missing_topics: list[str] = field(default_factory=list)
    deleted_indices: list[str] = field(default_factory=list)
    read_by_source: dict[str, int] = field(default_factory=dict)
    backlog: Backlog = field(default_factory=lambda: Backlog(0, 0, 0, 0))

    def metadata(self) -> dict[str, Any]:
        return {
            "engine_reachable": self.engine_reachable,
            "indexed": self.indexed,
            "spooled": self.spooled,
            "replayed": self.replayed,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "dropped_total": self.backlog.dropped_total,
            "backlog_bytes": self.backlog.bytes,
            "backlog_documents": self.backlog.documents,
            "backlog_segments": self.backlog.segments,
            "expired_offsets": self.expired_offsets,
            "kafka_lag": self.kafka_lag,
            "missing_topics": ", ".join(self.missing_topics) or "-",
            "deleted_indices": ", ".join(self.deleted_indices) or "-",
            "read_by_source": dict(self.read_by_source),
        }


@contextmanager
def _pass_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as handle:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another system_logs pass holds {directory / '.lock'}") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _reject(spool: FallbackSpool, report: PassReport, items: list[tuple[str, Any]]) -> None:
    if items:
        report.rejected += spool.reject(f"rejected-{dt.datetime.now(dt.UTC):%Y%m%d}", items)


def _replay(spool: FallbackSpool, search: SearchResource, report: PassReport, log: Any) -> None:
    """Send the fallback segments oldest first; stop at the first one the engine does not take."""
    for path in spool.segments():
        documents, unreadable = spool.read_segment(path)
        try:
            outcome = write_documents(search, documents)
        except EngineUnavailableError as exc:
            log.warning(f"replay of {path.name} stopped, kept for the next pass: {exc}")
            report.engine_reachable = False
            return
        # Documents refused for now (429/5xx) move to a new segment before this one is deleted.
        spool.append(outcome.retry, new_segment=True)
        _reject(spool, report, [(reason, {"index": i, "doc": d}) for reason, (i, d) in outcome.rejected])
        _reject(spool, report, unreadable)
        spool.remove(path)
        report.replayed += outcome.indexed
        if outcome.retry:
            log.warning(
                f"{len(outcome.retry)} documents refused for now (busy engine); replay continues later"
            )
            return


def _index_or_spool(
    spool: FallbackSpool, search: SearchResource, report: PassReport, docs: list[Spooled], log: Any
) -> None:
    to_spool = docs
    if report.engine_reachable and docs:
        try:
            outcome = write_documents(search, docs)
            report.indexed += outcome.indexed
            to_spool = outcome.retry
            _reject(spool, report, [(reason, {"index": i, "doc": d}) for reason, (i, d) in outcome.rejected])
        except EngineUnavailableError as exc:
            log.warning(f"{exc}; documents go to the fallback file {spool.directory}")
            report.engine_reachable = False
    if to_spool:
        spooled, dropped = spool.append(to_spool)
        report.spooled += spooled
        report.dropped += dropped
        if dropped:
            log.error(
                f"fallback file full ({spool.max_bytes} bytes): {dropped} documents dropped "
                f"(SYSTEM_LOGS_FALLBACK_MAX_BYTES)"
            )


def _apply_retention(config: MonitorConfig, search: SearchResource, report: PassReport, log: Any) -> None:
    """Delete the expired daily indices; an engine that stopped answering since the writes is reported
    as unreachable (any other error still fails the pass)."""
    try:
        report.deleted_indices = apply_retention(search, config.alias, config.retention_days)
    except Exception as exc:
        if search.ping():
            raise
        log.warning(f"search engine gone before the retention of {config.alias} (next pass): {exc}")
        report.engine_reachable = False


def run_pass(
    config: MonitorConfig,
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    search: SearchResource,
    log: Any = None,
) -> PassReport:
    """One pass (see the module docstring); returns what it did and the backlog left."""
    log = log or logging.getLogger(__name__)
    spool = config.spool()
    report = PassReport()
    with _pass_lock(config.fallback_dir):
        ensure_table(warehouse)
        report.engine_reachable = search.ping()
        if report.engine_reachable:
            try:
                ensure_template(search, config.alias)
            except Exception as exc:  # noqa: BLE001 - an engine that fails here is treated as down
                log.warning(f"index template {config.alias} not written: {exc}")
                report.engine_reachable = False
        if report.engine_reachable:
            _replay(spool, search, report, log)

        budget = config.max_docs_per_run
        kafka_read = read_topics(kafka, config.topics, read_positions(warehouse, KAFKA), budget)
        report.missing_topics, report.expired_offsets = kafka_read.missing_topics, kafka_read.expired
        report.kafka_lag = kafka_read.lag
        budget -= sum(len(batch.documents) for batch in kafka_read.batches)
        files = matching_files(config.log_patterns)
        batches = [*kafka_read.batches, *read_log_files(files, read_positions(warehouse, FILE), budget)]
        documents: list[Spooled] = []
        for batch in batches:
            report.read_by_source[batch.source] = len(batch.documents)
            documents += [(daily_index(config.alias, document_day(d)), d) for d in batch.documents]
        _index_or_spool(spool, search, report, documents, log)
        record_positions(
            warehouse,
            [position for batch in batches for position in batch.positions],
            forget_files_except={identity: path for identity, (path, _) in files.items()},
        )
        if report.engine_reachable:
            _apply_retention(config, search, report, log)
        report.backlog = spool.backlog()
    log.info(
        f"system_logs pass: {report.indexed} indexed, {report.spooled} spooled, {report.replayed} replayed, "
        f"{report.rejected} rejected, {report.dropped} dropped; backlog {report.backlog.bytes} bytes"
    )
    return report
