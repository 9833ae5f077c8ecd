"""Safe reading of landed files: regular files inside the landing root only, read once, complete.

A landing folder is writable by people and tools we do not control, so nothing is opened by path
alone: an entry is ``lstat``-ed and refused unless it is a regular file with a single name (a
symlink, a hard link to a file elsewhere, a FIFO, a device or a socket is refused), then opened
with ``O_NOFOLLOW | O_NONBLOCK`` (a swapped-in symlink fails, a FIFO never blocks) and ``fstat``-ed
to prove the descriptor is that same file. Its bytes are read once through that descriptor; the
readers parse those bytes, the hash is taken from them, and nothing is read through a path again.

A file is *settled* (ready to ingest) when a text file ends with a newline (a writer that paused
mid-line is still writing), a JSON document ends with the bracket that closes it, and its lines
stay under a maximum length (see :func:`line_over_limit`). These rules are pure functions of a
few bytes, unit-tested without a file system.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from resources.file_errors import UnreadableFileError

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
BINARY_SUFFIXES = (".xlsx", ".xlsm", ".gz")
DOCUMENT_SUFFIXES = (".json",)  # one JSON document, possibly on one line: no per-line limit
SAMPLE_BYTES = 4096
_CLOSING = {ord("["): ord("]"), ord("{"): ord("}")}
_WHITESPACE = b" \t\r\n"


class RefusedEntryError(UnreadableFileError):
    """A landing entry that is not a regular file inside the root: quarantined, never read.

    The reason names the kind of entry only: never the target of a link nor any of its content.
    """


class FileChangedError(Exception):
    """The file changed while it was being loaded: the load is rolled back, the file stays."""


@dataclass(frozen=True)
class FileIdentity:
    """What identifies one version of a file: the inode and its size and modification time."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def refusal_of(st: os.stat_result) -> str | None:
    """Why a landing entry (its ``lstat``) is refused, or None for a regular single-name file."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "refused: a symbolic link (links are never followed in the landing zone)"
    if stat.S_ISFIFO(mode):
        return "refused: a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "refused: a device file, not a regular file"
    if stat.S_ISSOCK(mode):
        return "refused: a socket, not a regular file"
    if not stat.S_ISREG(mode):
        return "refused: not a regular file"
    if st.st_nlink > 1:
        return (
            f"refused: a hard link ({st.st_nlink} names share this file, which may live outside "
            "the landing zone); copy the file in instead of linking it"
        )
    return None


def _inside(path: Path, root: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def open_regular(path: Path, root: Path | None = None) -> tuple[int, os.stat_result]:
    """Open a landed file for reading if, and only if, it is a safe regular file (see module doc).

    Returns the descriptor (the caller closes it) and its ``fstat``. Raises
    :class:`RefusedEntryError` for anything else, ``FileNotFoundError`` if it vanished.
    """
    before = os.lstat(path)
    refusal = refusal_of(before)
    if refusal is None and root is not None and not _inside(path, root):
        refusal = "refused: the path resolves outside the landing zone root"
    if refusal is not None:
        raise RefusedEntryError(refusal)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: replaced by a symlink since the lstat
            raise RefusedEntryError(refusal_of(os.lstat(path)) or "refused: a symbolic link") from exc
        raise
    opened = os.fstat(fd)
    refusal = refusal_of(opened)
    if refusal is None and (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
        refusal = "refused: the entry was replaced while it was being opened"
    if refusal is not None:
        os.close(fd)
        raise RefusedEntryError(refusal)
    return fd, opened


def read_fd(fd: int, size: int) -> bytes:
    """All bytes of an open regular file, from offset 0 (``size`` is a hint, growth is read too)."""
    parts: list[bytes] = []
    offset = 0
    chunk = max(size, 1 << 16)
    while block := os.pread(fd, chunk, offset):
        parts.append(block)
        offset += len(block)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def read_sample(path: Path, root: Path | None = None) -> tuple[bytes, bytes, os.stat_result]:
    """The first and last :data:`SAMPLE_BYTES` of a safe regular file, and its ``fstat``."""
    fd, st = open_regular(path, root)
    try:
        head = os.pread(fd, SAMPLE_BYTES, 0)
        tail = os.pread(fd, SAMPLE_BYTES, max(st.st_size - SAMPLE_BYTES, 0)) if st.st_size else b""
    finally:
        os.close(fd)
    return head, tail, st


def is_text_format(name: str) -> bool:
    """Text formats need a final newline to be settled; XLSX and gzip are binary."""
    return not name.lower().endswith(BINARY_SUFFIXES)


def unsettled_reason(name: str, head: bytes, tail: bytes) -> str | None:
    """Why a file still looks incomplete (a writer mid-way), from its first and last bytes.

    Binary formats are judged by settle time and markers only. Text content must end with a
    newline (UTF-16 too); a ``.json`` document must end with the bracket closing its first one.
    Content with NUL bytes and no UTF-16 BOM is binary junk: the reader quarantines it.
    """
    lower = name.lower()
    if not is_text_format(lower):
        return None
    if not head:
        return "empty so far (0 bytes)"
    if b"\x00" in tail or b"\x00" in head:
        if head.startswith(b"\xff\xfe"):
            return None if tail.endswith(b"\n\x00") else "does not end with a newline (UTF-16)"
        if head.startswith(b"\xfe\xff"):
            return None if tail.endswith(b"\x00\n") else "does not end with a newline (UTF-16)"
        return None
    if lower.endswith(DOCUMENT_SUFFIXES):
        first = head.lstrip(_WHITESPACE + b"\xef\xbb\xbf")[:1]
        last = tail.rstrip(_WHITESPACE)[-1:]
        closing = _CLOSING.get(first[0]) if first else None
        if closing is not None and last and last[0] == closing:
            return None
        return "the JSON document is not closed yet (no final ] or })"
    if not tail.endswith(b"\n"):
        return "does not end with a newline (its last line may still be being written)"
    return None


def line_over_limit(data: bytes, limit: int) -> tuple[int, int] | None:
    """The first line longer than ``limit`` bytes as (line number, length at least), else None.

    Jumps from the last newline of each ``limit + 1``-byte window to the next, so a file is
    checked in about ``len(data) / limit`` steps whatever its number of lines.
    """
    size, pos = len(data), 0
    while size - pos > limit:
        newline = data.rfind(b"\n", pos, pos + limit + 1)
        if newline == -1:
            end = data.find(b"\n", pos)
            length = (size if end == -1 else end) - pos
            return data.count(b"\n", 0, pos) + 1, length
        pos = newline + 1
    return None
