"""Pure rules of the landing zone's safety: which entries are refused, when a file is settled."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from resources.landing_safety import (
    RefusedEntryError,
    line_over_limit,
    open_regular,
    refusal_of,
    unsettled_reason,
)


def _naive_over(data: bytes, limit: int) -> tuple[int, int] | None:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if len(line) > limit:
            return number, len(line)
    return None


def test_refusal_of_each_kind_of_entry(tmp_path: Path) -> None:
    regular = tmp_path / "a.csv"
    regular.write_text("x\n")
    assert refusal_of(os.lstat(regular)) is None
    link = tmp_path / "link.csv"
    link.symlink_to("/etc/passwd")
    assert "symbolic link" in refusal_of(os.lstat(link))
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert "FIFO" in refusal_of(os.lstat(fifo))
    assert "device" in refusal_of(os.lstat("/dev/null"))
    os.link(regular, tmp_path / "twin.csv")
    assert "hard link (2 names" in refusal_of(os.lstat(regular))
    assert "not a regular file" in refusal_of(os.lstat(tmp_path))


def test_open_regular_never_reads_through_links_fifos_or_outside_paths(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    (root / "exports").mkdir(parents=True)
    link = root / "exports" / "x.csv"
    link.symlink_to("/etc/passwd")
    with pytest.raises(RefusedEntryError) as refused:
        open_regular(link, root)
    assert "root:" not in refused.value.reason and "passwd" not in refused.value.reason
    fifo = root / "exports" / "p.csv"
    os.mkfifo(fifo)  # opening it for reading in blocking mode would hang this test
    with pytest.raises(RefusedEntryError, match="FIFO"):
        open_regular(fifo, root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "good.csv").write_text("ano;mes\n2023;1\n")
    (root / "linked_dir").symlink_to(outside)
    with pytest.raises(RefusedEntryError, match="outside the landing zone"):
        open_regular(root / "linked_dir" / "good.csv", root)
    fine = root / "exports" / "ok.csv"
    fine.write_text("ano;mes\n")
    fd, st = open_regular(fine, root)
    try:
        assert os.pread(fd, 100, 0) == b"ano;mes\n" and st.st_size == 8
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("name", "head", "tail", "settled"),
    [
        ("a.csv", b"ano;mes\n2023;1\n", b"ano;mes\n2023;1\n", True),
        ("a.csv", b"ano;mes\n2023;1\n2023;", b"ano;mes\n2023;1\n2023;", False),  # cut mid-line
        ("a.CSV", b"", b"", False),  # created, nothing written yet
        ("a.txt", b"x\r\n", b"x\r\n", True),
        ("e.jsonl", b'{"a": 1}\n{"a"', b'{"a": 1}\n{"a"', False),
        ("e.ndjson", b'{"a": 1}\n', b'{"a": 1}\n', True),
        ("d.json", b'[{"a": 1},\n', b'[{"a": 1},\n', False),  # array not closed
        ("d.json", b'  [{"a": 1}]', b'  [{"a": 1}]', True),  # closed, no newline needed
        ("d.json", b'{"events": [1]}\n', b'{"events": [1]}\n', True),
        ("d.json", b'{"events": [1', b'{"events": [1', False),
        ("b.xlsx", b"PK\x03\x04", b"partial zip", True),  # binary: settle time and markers only
        ("c.jsonl.gz", b"\x1f\x8b", b"\x00", True),
        ("junk.jsonl", b"\x00\x01binary\x00junk", b"\x00\x01binary\x00junk", True),  # reader quarantines
        ("u16.csv", b"\xff\xfea\x00\n\x00", b"a\x00\n\x00", True),
        ("u16.csv", b"\xff\xfea\x00\n\x00b\x00", b"\n\x00b\x00", False),
    ],
)
def test_unsettled_reason(name: str, head: bytes, tail: bytes, settled: bool) -> None:
    assert (unsettled_reason(name, head, tail) is None) is settled


def test_line_over_limit_finds_the_first_long_line() -> None:
    assert line_over_limit(b"", 4) is None
    assert line_over_limit(b"abcd\nabcd\nabcd", 4) is None  # exactly the limit, last line unterminated
    assert line_over_limit(b"ab\nabcde\nab\n", 4) == (2, 5)
    assert line_over_limit(b"ab\nab\n" + b"x" * 50, 4) == (3, 50)
    assert line_over_limit(b"x" * 10 + b"\n", 4) == (1, 10)


def test_line_over_limit_agrees_with_a_naive_scan() -> None:
    rng = random.Random(7)
    for _ in range(400):
        lines = [b"y" * rng.choice([0, 1, 3, 7, 8, 9, 15]) for _ in range(rng.randint(0, 12))]
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        limit = rng.choice([1, 4, 8, 10])
        expected = _naive_over(data, limit)
        found = line_over_limit(data, limit)
        assert (found is None) == (expected is None), (data, limit)
        if found is not None:
            assert found[0] == expected[0] and found[1] == expected[1]
