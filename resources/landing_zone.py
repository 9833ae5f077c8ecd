"""The landing zone: folders where files are dropped, identified by content, archived or quarantined.

Shared by every file-fed pipeline (export CSV/XLSX, commerce JSONL, usage JSON): the file-drop
sensor scans a domain folder and the ingest asset locates, archives or quarantines the file of
its partition. Layout under ``<root>/<domain>/``::

    new files             dropped by users or tools
    _archive/<d12>-<name>     loaded files (d12 = first 12 hex digits of the SHA-256)
    _quarantine/<d12>-<name>  unreadable files, next to <d12>-<name>.reason.txt
    _duplicates/<name>        re-dropped files whose content was already ingested
"""

import hashlib
import re
import shutil
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.file_errors import UnreadableFileError

__all__ = ["UnreadableFileError", "LandingZoneResource", "LandedFile"]

DIGEST_CHARS = 12
_KEY_SEPARATOR = "__"
_SPECIAL_DIRS = ("_archive", "_quarantine", "_duplicates")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_IGNORED_PREFIXES = (".", "~$")
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".reason.txt")


def file_digest(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's content: the identity of a dropped file."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            sha.update(chunk)
    return sha.hexdigest()


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


@dataclass(frozen=True)
class LandedFile:
    path: Path
    size: int
    mtime_ns: int
    digest: str

    @property
    def partition_key(self) -> str:
        return partition_key_for(self.path.name, self.digest)


class LandingZoneResource(ConfigurableResource):
    """File-system landing zone rooted at ``root`` (relative paths are relative to the working dir)."""

    root: str = Field(default="data/landing", description="Landing zone root folder")

    def domain_dir(self, domain: str) -> Path:
        path = Path(self.root) / domain
        path.mkdir(parents=True, exist_ok=True)
        return path

    def candidate_files(
        self, domain: str, patterns: tuple[str, ...], settle_seconds: float
    ) -> list[tuple[Path, int, int]]:
        """Files ready to ingest: matching a pattern, not temporary, unchanged for ``settle_seconds``.

        Returns (path, size, mtime_ns) sorted by modification time so older drops run first.
        """
        now_ns = time.time_ns()
        found: list[tuple[Path, int, int]] = []
        for path in self.domain_dir(domain).iterdir():
            name = path.name
            if not path.is_file() or name.startswith(_IGNORED_PREFIXES) or name.endswith(_IGNORED_SUFFIXES):
                continue
            if not any(fnmatch(name.lower(), pattern) for pattern in patterns):
                continue
            stat = path.stat()
            if (now_ns - stat.st_mtime_ns) / 1e9 < settle_seconds:
                continue
            found.append((path, stat.st_size, stat.st_mtime_ns))
        return sorted(found, key=lambda item: (item[2], item[0].name))

    def _archive_path(self, domain: str, digest: str, name: str) -> Path:
        return self.domain_dir(domain) / "_archive" / f"{digest[:DIGEST_CHARS]}-{name}"

    def _quarantine_path(self, domain: str, digest: str, name: str) -> Path:
        return self.domain_dir(domain) / "_quarantine" / f"{digest[:DIGEST_CHARS]}-{name}"

    def is_archived(self, domain: str, digest: str, name: str) -> bool:
        return self._archive_path(domain, digest, name).exists()

    def locate(self, domain: str, partition_key: str) -> Path | None:
        """Find the file of a partition: still in the landing folder, archived, or quarantined."""
        digest = digest_of_key(partition_key)
        base = self.domain_dir(domain)
        candidates = [p for p in base.iterdir() if p.is_file()]
        for sub in ("_archive", "_quarantine"):
            folder = base / sub
            if folder.is_dir():
                candidates.extend(p for p in folder.glob(f"{digest}-*") if not p.name.endswith(".reason.txt"))
        for path in candidates:
            name = path.name.split("-", 1)[1] if path.parent.name in _SPECIAL_DIRS else path.name
            if partition_key_for(name, digest) != partition_key:
                continue
            if file_digest(path)[:DIGEST_CHARS] == digest:
                return path
        return None

    def archive(self, domain: str, path: Path, digest: str) -> Path:
        """Move a loaded file out of the landing folder (no-op when it is already archived)."""
        if path.parent.name in _SPECIAL_DIRS:
            return path
        target = self._archive_path(domain, digest, path.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        return target

    def quarantine(self, domain: str, path: Path, digest: str, reason: str) -> Path:
        """Move an unreadable file to quarantine with a reason file beside it."""
        original_name = path.name.split("-", 1)[1] if path.parent.name in _SPECIAL_DIRS else path.name
        target = self._quarantine_path(domain, digest, original_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path != target:
            shutil.move(str(path), target)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        target.with_name(target.name + ".reason.txt").write_text(
            f"file: {original_name}\nsha256: {digest}\nquarantined_at: {stamp}\nreason: {reason}\n",
            encoding="utf-8",
        )
        return target

    def set_aside_duplicate(self, domain: str, path: Path, original_key: str) -> Path:
        """Move a re-dropped identical file aside, saying which partition already holds its content."""
        folder = self.domain_dir(domain) / "_duplicates"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.name}"
        shutil.move(str(path), target)
        target.with_name(target.name + ".reason.txt").write_text(
            f"identical content was already ingested as partition {original_key}\n", encoding="utf-8"
        )
        return target
