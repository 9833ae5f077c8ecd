"""Landing-zone mechanics on real files: identity by content, settle time, archive, quarantine, safety."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from assets.sources.landing_feed._sensor import plan_file_drops
from resources.landing_zone import (
    FileChangedError,
    LandingZoneResource,
    RefusedEntryError,
    digest_of_key,
    file_digest,
    partition_key_for,
)


def _drop(folder: Path, name: str, content: str, age_s: float = 60) -> Path:
    path = folder / name
    path.write_text(content, encoding="utf-8")
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def test_partition_key_is_readable_and_content_addressed() -> None:
    digest = "ab" * 32
    key = partition_key_for("exportação jan,2023.csv", digest)
    assert key == "exportacao_jan_2023.csv__abababababab"
    assert digest_of_key(key) == "abababababab"
    with pytest.raises(ValueError):
        digest_of_key("no-digest-here")


def test_candidates_skip_temporary_unsettled_and_unmatched(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    _drop(folder, "a.csv", "x\n")
    _drop(folder, "b.csv.part", "x\n")
    _drop(folder, "c.csv.tmp", "x\n")
    _drop(folder, ".hidden.csv", "x\n")
    _drop(folder, "notes.md", "x\n")
    _drop(folder, "fresh.csv", "x\n", age_s=0)
    (folder / "_archive").mkdir()
    names = [p.name for p, _, _ in zone.candidate_files("exports", ("*.csv",), settle_seconds=5)]
    assert names == ["a.csv"]


def test_plan_requests_new_files_once_and_sets_aside_duplicates(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    _drop(folder, "jan.csv", "ano;mes\n2023;1\n")
    _drop(folder, "feb.csv", "ano;mes\n2023;2\n")
    _drop(folder, "jan_copy.csv", "ano;mes\n2023;1\n")  # same content as jan.csv, other name

    def archived(digest: str, name: str) -> bool:
        return zone.is_archived("exports", digest, name)

    candidates = zone.candidate_files("exports", ("*.csv",), 0)
    plan = plan_file_drops(candidates, set(), {}, archived, max_files=10)
    assert sorted(plan.new_keys) == sorted(
        [
            partition_key_for("jan.csv", file_digest(folder / "jan.csv")),
            partition_key_for("feb.csv", file_digest(folder / "feb.csv")),
        ]
    )
    assert [p.name for p, _ in plan.duplicates] == ["jan_copy.csv"]

    # Next tick: partitions exist, files still pending (runs not finished) -> nothing new, no duplicates.
    remaining = [c for c in candidates if c[0].name != "jan_copy.csv"]
    plan2 = plan_file_drops(remaining, set(plan.new_keys), plan.cursor, archived, max_files=10)
    assert plan2.new_keys == [] and plan2.duplicates == []


def test_plan_respects_max_files_per_tick(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    for i in range(5):
        _drop(folder, f"f{i}.csv", f"content {i}\n")
    candidates = zone.candidate_files("exports", ("*.csv",), 0)
    first = plan_file_drops(candidates, set(), {}, lambda d, n: False, max_files=2)
    assert len(first.new_keys) == 2
    second = plan_file_drops(candidates, set(first.new_keys), first.cursor, lambda d, n: False, max_files=2)
    assert len(second.new_keys) == 2 and not set(second.new_keys) & set(first.new_keys)


def test_locate_archive_and_quarantine(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    path = _drop(folder, "mar.csv", "ano;mes\n2023;3\n")
    digest = file_digest(path)
    key = partition_key_for("mar.csv", digest)
    assert zone.locate("exports", key) == path
    archived = zone.archive("exports", path, digest)
    assert not path.exists() and archived.parent.name == "_archive"
    assert zone.locate("exports", key) == archived
    assert zone.is_archived("exports", digest, "mar.csv")

    bad = _drop(folder, "bad.xlsx", "not a zip")
    bad_digest = file_digest(bad)
    moved = zone.quarantine("exports", bad, bad_digest, "corrupt XLSX: not a zip file")
    reason = moved.with_name(moved.name + ".reason.txt").read_text(encoding="utf-8")
    assert "corrupt XLSX: not a zip file" in reason and "bad.xlsx" in reason
    assert zone.locate("exports", partition_key_for("bad.xlsx", bad_digest)) == moved


def test_scan_refuses_links_fifos_and_hard_links_and_moves_them_unread(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path / "landing"))
    folder = zone.domain_dir("exports")
    outside = tmp_path / "outside.csv"
    outside.write_text("ano;mes\nsecret;1\n")
    (folder / "x.csv").symlink_to("/etc/passwd")
    (folder / "y.csv").symlink_to(outside)
    os.mkfifo(folder / "pipe.csv")
    os.link(outside, folder / "hard.csv")
    good = _drop(folder, "good.csv", "ano;mes\n2023;1\n")
    scan = zone.scan("exports", ("*.csv",), settle_seconds=0)
    assert [p for p, _, _ in scan.ready] == [good]
    refused = {p.name: reason for p, reason in scan.refused}
    assert set(refused) == {"x.csv", "y.csv", "pipe.csv", "hard.csv"}
    for path, reason in scan.refused:
        moved = zone.refuse("exports", path, reason)
        assert moved.parent.name == "_quarantine" and not os.path.lexists(path)
        text = moved.with_name(moved.name + ".reason.txt").read_text()
        assert reason in text and "secret" not in text and "root:" not in text
    assert os.path.islink(next((folder / "_quarantine").glob("refused-*-x.csv")))  # the link, not a copy
    assert outside.read_text() == "ano;mes\nsecret;1\n"
    outside_digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    assert zone.locate("exports", partition_key_for("y.csv", outside_digest)) is None


def test_a_symlinked_archive_folder_is_refused(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path / "landing"))
    folder = zone.domain_dir("exports")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "_archive").symlink_to(elsewhere)
    path = _drop(folder, "a.csv", "ano\n1\n")
    with pytest.raises(RefusedEntryError, match="_archive is not a real folder"):
        zone.archive("exports", path, file_digest(path))
    assert path.exists() and list(elsewhere.iterdir()) == []


def test_unterminated_text_waits_then_is_read_after_the_grace(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    _drop(folder, "half.csv", "ano;mes\n2023;1\n2023;", age_s=60)
    scan = zone.scan("exports", ("*.csv",), settle_seconds=2, unterminated_seconds=900)
    assert scan.ready == [] and [(p.name, "newline" in r) for p, r in scan.waiting] == [("half.csv", True)]
    assert zone.scan("exports", ("*.csv",), 2, unterminated_seconds=30).ready[0][0].name == "half.csv"
    with (folder / "half.csv").open("a") as handle:
        handle.write("2\n")
    os.utime(folder / "half.csv", (time.time() - 60, time.time() - 60))
    assert [p.name for p, _, _ in zone.scan("exports", ("*.csv",), 2, 900).ready] == ["half.csv"]


def test_marker_feeds_wait_for_done_or_success(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    path = _drop(folder, "a.csv", "ano;mes\n2023;1\n", age_s=60)
    scan = zone.scan("exports", ("*.csv",), 2, require_marker=True)
    assert scan.ready == [] and "marker" in scan.waiting[0][1]
    success = _drop(folder, "_SUCCESS", "", age_s=120)  # older than the file: not for this file
    assert zone.scan("exports", ("*.csv",), 2, require_marker=True).ready == []
    os.utime(success, None)
    assert len(zone.scan("exports", ("*.csv",), 2, require_marker=True).ready) == 1
    success.unlink()
    (folder / "a.csv.done").touch()
    assert len(zone.scan("exports", ("*.csv",), 2, require_marker=True).ready) == 1
    archived = zone.archive("exports", path, file_digest(path))
    assert not (folder / "a.csv.done").exists()  # the marker follows its file
    assert archived.with_name(archived.name + ".done").exists()


def test_verify_unchanged_detects_appends_but_not_touches(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    path = _drop(folder, "a.csv", "ano;mes\n2023;1\n")
    key = partition_key_for("a.csv", file_digest(path))
    content = zone.read(path, key)
    digest = file_digest(path)
    zone.verify_unchanged(path, content, digest)
    os.utime(path, None)  # touched: same bytes
    zone.verify_unchanged(path, content, digest)
    with path.open("a") as handle:
        handle.write("2023;2\n")
    with pytest.raises(FileChangedError, match="changed between the read and the archive"):
        zone.verify_unchanged(path, content, digest)
    archived = zone.archive("exports", path, digest)
    zone.restore(archived, path)
    assert path.read_text() == "ano;mes\n2023;1\n2023;2\n" and not archived.exists()
    quarantined = zone.quarantine("exports", path, digest, "unreadable")
    zone.restore(quarantined, path)  # a rolled-back quarantine leaves no stray reason file
    assert path.exists() and list((folder / "_quarantine").iterdir()) == []


def test_plan_skips_a_file_replaced_or_removed_after_the_scan(tmp_path: Path) -> None:
    zone = LandingZoneResource(root=str(tmp_path))
    folder = zone.domain_dir("exports")
    gone = _drop(folder, "gone.csv", "a\n")
    swapped = _drop(folder, "swapped.csv", "b\n")
    candidates = zone.candidate_files("exports", ("*.csv",), 0)
    gone.unlink()
    swapped.unlink()
    swapped.symlink_to("/etc/passwd")
    plan = plan_file_drops(candidates, set(), {}, lambda d, n: False, max_files=10)
    assert plan.new_keys == [] and plan.duplicates == []
