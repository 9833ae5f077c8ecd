"""Landing-zone mechanics on real files: identity by content, settle time, archive, quarantine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from resources.landing_zone import (
    LandingZoneResource,
    digest_of_key,
    file_digest,
    partition_key_for,
)
from sensors.file_drop import plan_file_drops


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
    _drop(folder, "a.csv", "x")
    _drop(folder, "b.csv.part", "x")
    _drop(folder, ".hidden.csv", "x")
    _drop(folder, "notes.md", "x")
    _drop(folder, "fresh.csv", "x", age_s=0)
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
        _drop(folder, f"f{i}.csv", f"content {i}")
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
