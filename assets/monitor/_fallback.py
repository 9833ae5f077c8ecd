"""The fallback file: documents the search engine could not take, kept on local disk until it can.

A directory of JSONL segments (``segment-<number>.jsonl``, one ``{"index", "doc"}`` object per line),
appended to and ``fsync``ed before the offsets of the documents are recorded, so a document is
either in the index, in a segment, or still unread at its source. A segment is closed at a tenth of
the total bound and a new one started; replay reads the segments oldest first and deletes each
one only after every document of it was indexed (a replay cut short re-sends the segment next
time, which the deterministic ids make harmless).

The directory is bounded (``max_bytes``): a document that does not fit is dropped and counted in
``state.json`` (``dropped``), reported by every pass and in the asset's metadata. Lines that cannot
be read back (a write torn by a crash) and documents the engine refuses for good are moved to
``rejected/`` with the reason, never silently lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

_PREFIX = "segment-"
_SUFFIX = ".jsonl"
_STATE = "state.json"
MIN_SEGMENT_BYTES = 4096

Spooled = tuple[str, dict[str, Any]]  # (index, document)


@dataclass(frozen=True)
class Backlog:
    """What the fallback directory holds now."""

    segments: int
    bytes: int
    documents: int
    dropped_total: int


class FallbackSpool:
    """Bounded, size-rotated JSONL segments under ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path | str, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"SYSTEM_LOGS_FALLBACK_MAX_BYTES must be positive, got {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(MIN_SEGMENT_BYTES, max_bytes // 10)
        self._encode = msgspec.json.Encoder(decimal_format="number").encode

    # -- reading the state ------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob(f"{_PREFIX}*{_SUFFIX}") if p.is_file())

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.segments())

    def dropped_total(self) -> int:
        try:
            return int(json.loads((self.directory / _STATE).read_text())["dropped"])
        except (FileNotFoundError, KeyError, ValueError):
            return 0

    def backlog(self) -> Backlog:
        segments = self.segments()
        documents = 0
        for path in segments:
            with path.open("rb") as handle:
                documents += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        return Backlog(
            len(segments), sum(p.stat().st_size for p in segments), documents, self.dropped_total()
        )

    # -- writing ----------------------------------------------------------------------------------

    def _add_dropped(self, count: int) -> None:
        state = self.directory / _STATE
        temporary = state.with_suffix(".tmp")
        temporary.write_text(json.dumps({"dropped": self.dropped_total() + count}))
        os.replace(temporary, state)

    def _next_segment(self, segments: list[Path]) -> Path:
        number = int(segments[-1].name[len(_PREFIX) : -len(_SUFFIX)]) + 1 if segments else 1
        return self.directory / f"{_PREFIX}{number:012d}{_SUFFIX}"

    def append(self, documents: Iterable[Spooled], new_segment: bool = False) -> tuple[int, int]:
        """Append documents durably (fsync); return (spooled, dropped because the bound was reached).

        ``new_segment`` starts a new segment instead of appending to the last one (a replay moving
        the documents still to send out of the segment it is about to delete)."""
        documents = list(documents)
        if not documents:
            return 0, 0
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = self.segments()
        total = sum(p.stat().st_size for p in segments)
        current = segments[-1] if segments and not new_segment else self._next_segment(segments)
        current_size = current.stat().st_size if current.exists() else 0
        spooled = dropped = 0
        handle = current.open("ab")
        try:
            for index, doc in documents:
                line = self._encode({"index": index, "doc": doc}) + b"\n"
                if total + len(line) > self.max_bytes:
                    dropped += 1
                    continue
                if current_size and current_size + len(line) > self.segment_bytes:
                    handle.flush()
                    os.fsync(handle.fileno())
                    handle.close()
                    segments.append(current)
                    current = self._next_segment(segments)
                    current_size = 0
                    handle = current.open("ab")
                handle.write(line)
                current_size += len(line)
                total += len(line)
                spooled += 1
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            handle.close()
        _fsync_directory(self.directory)
        if dropped:
            self._add_dropped(dropped)
        return spooled, dropped

    # -- replaying --------------------------------------------------------------------------------

    def read_segment(self, path: Path) -> tuple[list[Spooled], list[tuple[str, Any]]]:
        """The documents of one segment, and its unreadable lines with the reason (a torn write)."""
        documents: list[Spooled] = []
        unreadable: list[tuple[str, Any]] = []
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    item = json.loads(line)
                    documents.append((str(item["index"]), dict(item["doc"])))
                except (ValueError, KeyError, TypeError) as exc:
                    reason = f"{path.name}:{number}: unreadable line ({exc})"
                    unreadable.append((reason, line.decode(errors="replace")))
        return documents, unreadable

    def reject(self, name: str, items: Iterable[tuple[str, Any]]) -> int:
        """Keep refused documents in ``rejected/<name>.jsonl`` with their reason; return how many."""
        rows = [{"reason": reason, "document": doc} for reason, doc in items]
        if not rows:
            return 0
        folder = self.directory / "rejected"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{name}.jsonl").open("ab") as handle:
            handle.write(b"".join(self._encode(row) + b"\n" for row in rows))
            handle.flush()
            os.fsync(handle.fileno())
        return len(rows)

    def remove(self, path: Path) -> None:
        """Delete a segment whose every document has been indexed."""
        path.unlink(missing_ok=True)
        _fsync_directory(self.directory)


def _fsync_directory(directory: Path) -> None:
    """Make file creations/deletions in ``directory`` durable (no-op where directories can't be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
