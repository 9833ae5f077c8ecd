"""The landing zone: folders where files are dropped, identified by content, archived or quarantined.

Shared by every file-fed pipeline (export CSV/XLSX, commerce JSONL, usage JSON): the file-drop
sensor scans a domain folder and the ingest asset locates, reads, archives or quarantines the file
of its partition. Layout under ``<root>/<domain>/``::

    new files             dropped by users or tools
    _archive/<d12>-<name>     loaded files (d12 = first 12 hex digits of the SHA-256)
    _quarantine/<d12>-<name>  unreadable files, next to <d12>-<name>.reason.txt
    _quarantine/refused-<time>-<name>  entries that are not regular files (symlinks, FIFOs, ...)
    _duplicates/<name>        re-dropped files whose content was already ingested

Only regular files inside the root are ever read (:mod:`resources.landing_safety`). A file is
ready when it is settled: no temporary name (``*.part``, ``*.tmp``, ...), unchanged for the settle
time, and complete -- a text file ends with a newline, or, for feeds configured to use markers, a
``<name>.done`` file or a newer ``_SUCCESS`` file says the writer is done.
"""

import hashlib
import os
import re
import shutil
import stat
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.file_errors import UnreadableFileError
from resources.landing_safety import (
    FileChangedError,
    FileIdentity,
    RefusedEntryError,
    open_regular,
    read_fd,
    read_sample,
    refusal_of,
    unsettled_reason,
)

__all__ = [
    "FileChangedError",
    "LandedContent",
    "LandingScan",
    "LandingZoneResource",
    "RefusedEntryError",
    "UnreadableFileError",
]

DIGEST_CHARS = 12
MARKER_SUFFIX = ".done"
FOLDER_MARKER = "_SUCCESS"
_KEY_SEPARATOR = "__"
_SPECIAL_DIRS = ("_archive", "_quarantine", "_duplicates")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_IGNORED_PREFIXES = (".", "~$")
_IGNORED_SUFFIXES = (".part", ".tmp", ".temp", ".partial", ".filepart", ".crdownload", ".reason.txt")


def file_digest(path: Path, chunk_size: int = 1 << 20, root: Path | None = None) -> str:
    """SHA-256 of a file's content, the identity of a dropped file (read only if it is safe)."""
    fd, _ = open_regular(path, root)
    sha = hashlib.sha256()
    offset = 0
    try:
        while chunk := os.pread(fd, chunk_size, offset):
            sha.update(chunk)
            offset += len(chunk)
    finally:
        os.close(fd)
    return sha.hexdigest()


def digest_of_bytes(data: bytes) -> str:
    """SHA-256 of bytes already read (hashlib releases the GIL on large buffers)."""
    return hashlib.sha256(data).hexdigest()


def partition_key_for(name: str, digest: str) -> str:
    """Readable, content-addressed partition key: ``<safe file name>__<12 hex digits>``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    safe = _UNSAFE.sub("_", ascii_name).strip("_")[:80] or "file"
    return f"{safe}{_KEY_SEPARATOR}{digest[:DIGEST_CHARS]}"


def digest_of_key(partition_key: str) -> str:
    """The 12-digit content digest a partition key carries."""
    digest = partition_key.rsplit(_KEY_SEPARATOR, 1)[-1]
    if not re.fullmatch(f"[0-9a-f]{{{DIGEST_CHARS}}}", digest):
        raise ValueError(f"not a landing-file partition key: {partition_key!r}")
    return digest


def digest_prefixed(digest: str, name: str) -> str:
    """``<d12>-<name>``: the name of a file once archived or quarantined (first 12 digest digits)."""
    return f"{digest[:DIGEST_CHARS]}-{name}"


def original_name(path: Path) -> str:
    """The dropped name of a file, also once moved to ``_archive/`` or ``_quarantine/`` (undoes
    :func:`digest_prefixed`)."""
    return path.name.split("-", 1)[1] if path.parent.name in _SPECIAL_DIRS else path.name


@dataclass(frozen=True)
class LandedContent:
    """The bytes of one landed file, read once through a safely opened descriptor."""

    name: str
    data: bytes
    partition_key: str
    identity: FileIdentity | None = None  # None when not read from the landing zone (tools, tests)


@dataclass(frozen=True)
class LandingScan:
    """One look at a domain folder: files ready to ingest, entries to refuse, files still written."""

    ready: list[tuple[Path, int, int]] = field(default_factory=list)  # (path, size, mtime_ns)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    waiting: list[tuple[Path, str]] = field(default_factory=list)


class LandingZoneResource(ConfigurableResource):
    """File-system landing zone rooted at ``root`` (relative paths are relative to the working dir)."""

    root: str = Field(default="data/landing", description="Landing zone root folder")

    def domain_dir(self, domain: str) -> Path:
        path = Path(self.root) / domain
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _special_dir(self, domain: str, name: str) -> Path:
        """``_archive``/``_quarantine``/``_duplicates``, refused when it is not a real folder."""
        path = self.domain_dir(domain) / name
        path.mkdir(exist_ok=True)
        if path.is_symlink() or not path.is_dir():
            raise RefusedEntryError(f"refused: {domain}/{name} is not a real folder (a symbolic link?)")
        return path

    def scan(
        self,
        domain: str,
        patterns: tuple[str, ...],
        settle_seconds: float,
        unterminated_seconds: float = 900.0,
        require_marker: bool = False,
    ) -> LandingScan:
        """Sort the entries of a domain folder into ready, refused and waiting (see module doc).

        A text file without its final newline waits until it has been unchanged for
        ``unterminated_seconds`` (a writer that went away for good), then is ingested as it is.
        """
        now_ns = time.time_ns()
        folder = self.domain_dir(domain)
        scan = LandingScan()
        success = _marker_mtime(folder / FOLDER_MARKER) if require_marker else None
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(_IGNORED_PREFIXES) or name.endswith(_IGNORED_SUFFIXES):
                    continue
                if not any(fnmatch(name.lower(), pattern) for pattern in patterns):
                    continue
                path = Path(entry.path)
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    continue
                refusal = refusal_of(st)
                if refusal is not None:
                    scan.refused.append((path, refusal))
                    continue
                age_s = (now_ns - st.st_mtime_ns) / 1e9
                if age_s < settle_seconds:
                    continue
                if require_marker:
                    done = _marker_mtime(path.with_name(name + MARKER_SUFFIX))
                    if done is None and (success is None or success < st.st_mtime_ns):
                        scan.waiting.append(
                            (path, f"no {name}{MARKER_SUFFIX} or newer {FOLDER_MARKER} marker")
                        )
                        continue
                else:
                    try:
                        head, tail, _ = read_sample(path, Path(self.root))
                    except RefusedEntryError as exc:
                        scan.refused.append((path, exc.reason))
                        continue
                    except FileNotFoundError:
                        continue
                    reason = unsettled_reason(name, head, tail)
                    if reason is not None and age_s < unterminated_seconds:
                        scan.waiting.append((path, reason))
                        continue
                scan.ready.append((path, st.st_size, st.st_mtime_ns))
        scan.ready.sort(key=lambda item: (item[2], item[0].name))
        return scan

    def candidate_files(
        self, domain: str, patterns: tuple[str, ...], settle_seconds: float
    ) -> list[tuple[Path, int, int]]:
        """Files ready to ingest, oldest first: (path, size, mtime_ns) (see :meth:`scan`)."""
        return self.scan(domain, patterns, settle_seconds).ready

    def _archive_path(self, domain: str, digest: str, name: str) -> Path:
        return self.domain_dir(domain) / "_archive" / digest_prefixed(digest, name)

    def is_archived(self, domain: str, digest: str, name: str) -> bool:
        return self._archive_path(domain, digest, name).exists()

    def locate(self, domain: str, partition_key: str) -> Path | None:
        """Find the file of a partition: still in the landing folder, archived, or quarantined.

        Only safe regular files are hashed; anything else is left to the sensor to refuse.
        """
        digest = digest_of_key(partition_key)
        base = self.domain_dir(domain)
        candidates = [p for p in base.iterdir() if p.name not in _SPECIAL_DIRS]
        for sub in ("_archive", "_quarantine"):
            folder = base / sub
            if folder.is_dir() and not folder.is_symlink():
                candidates.extend(
                    p for p in folder.glob(digest_prefixed(digest, "*")) if not p.name.endswith(".reason.txt")
                )
        for path in candidates:
            if partition_key_for(original_name(path), digest) != partition_key:
                continue
            try:
                if file_digest(path, root=Path(self.root))[:DIGEST_CHARS] == digest:
                    return path
            except (RefusedEntryError, FileNotFoundError):
                continue
        return None

    def read(self, path: Path, partition_key: str) -> LandedContent:
        """Read a landed file once, safely; :class:`FileChangedError` if it changed while read."""
        fd, before = open_regular(path, Path(self.root))
        try:
            data = read_fd(fd, before.st_size)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        identity = FileIdentity.of(after)
        if identity != FileIdentity.of(before) or len(data) != after.st_size:
            raise FileChangedError(f"{path.name} changed while it was being read")
        return LandedContent(original_name(path), data, partition_key, identity)

    def verify_unchanged(self, path: Path, content: LandedContent, digest: str) -> None:
        """Raise :class:`FileChangedError` if ``path`` no longer holds the content that was read.

        Same inode, size and mtime: unchanged. Otherwise the content is hashed again, so a file
        only touched (same bytes) is not reloaded for nothing.
        """
        st = os.lstat(path)
        if content.identity is None or FileIdentity.of(st) == content.identity:
            return
        same_inode = (st.st_dev, st.st_ino) == (content.identity.dev, content.identity.ino)
        if (
            same_inode
            and st.st_size == len(content.data)
            and file_digest(path, root=Path(self.root)) == digest
        ):
            return
        raise FileChangedError(
            f"{content.name} changed between the read and the archive "
            f"(size {len(content.data)} -> {st.st_size} bytes)"
        )

    def archive(self, domain: str, path: Path, digest: str) -> Path:
        """Move a loaded file out of the landing folder (no-op when it is already archived)."""
        if path.parent.name in _SPECIAL_DIRS:
            return path
        self._special_dir(domain, "_archive")
        target = self._archive_path(domain, digest, path.name)
        os.replace(path, target)
        _move_marker(path, target)
        return target

    def restore(self, moved: Path, original: Path) -> None:
        """Undo :meth:`archive`/:meth:`quarantine` after a rollback: the file goes back where it was."""
        if moved != original and moved.exists() and not original.exists():
            os.replace(moved, original)
            _move_marker(moved, original)
            moved.with_name(moved.name + ".reason.txt").unlink(missing_ok=True)

    def quarantine(self, domain: str, path: Path, digest: str, reason: str) -> Path:
        """Move an unreadable file to quarantine with a reason file beside it."""
        name = original_name(path)
        target = self._special_dir(domain, "_quarantine") / digest_prefixed(digest, name)
        if path != target:
            os.replace(path, target)
            _move_marker(path, target)
        _write_reason(target, f"file: {name}\nsha256: {digest}\n", reason)
        return target

    def refuse(self, domain: str, path: Path, reason: str) -> Path:
        """Move an entry that is not a safe regular file (the link itself, never its target) aside."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = self._special_dir(domain, "_quarantine") / f"refused-{stamp}-{path.name}"
        os.rename(path, target)  # renames the directory entry: a symlink is moved, not followed
        _move_marker(path, target)
        _write_reason(target, f"file: {path.name}\nsha256: (not read)\n", reason)
        return target

    def set_aside_duplicate(self, domain: str, path: Path, original_key: str) -> Path:
        """Move a re-dropped identical file aside, saying which partition already holds its content."""
        folder = self._special_dir(domain, "_duplicates")
        target = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.name}"
        shutil.move(str(path), target)
        _move_marker(path, target)
        target.with_name(target.name + ".reason.txt").write_text(
            f"identical content was already ingested as partition {original_key}\n", encoding="utf-8"
        )
        return target


def _marker_mtime(path: Path) -> int | None:
    """Modification time of a marker file, None if absent or not a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns if stat.S_ISREG(st.st_mode) else None


def _move_marker(path: Path, target: Path) -> None:
    """A ``<name>.done`` marker follows its file, so a later drop under the same name waits again."""
    marker = path.with_name(path.name + MARKER_SUFFIX)
    if os.path.lexists(marker):
        os.replace(marker, target.with_name(target.name + MARKER_SUFFIX))


def _write_reason(target: Path, header: str, reason: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    target.with_name(target.name + ".reason.txt").write_text(
        f"{header}quarantined_at: {stamp}\nreason: {reason}\n", encoding="utf-8"
    )
