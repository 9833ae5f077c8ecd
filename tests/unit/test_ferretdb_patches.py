"""The FerretDB source patches apply exactly or fail the build loudly (pure file logic, no Go)."""

from pathlib import Path

import pytest

from services import proc
from services.ferretdb_patches import PATCHES, Patch, apply_patches


def test_a_patch_replaces_its_single_match(tmp_path: Path) -> None:
    target = tmp_path / "internal" / "x.go"
    target.parent.mkdir(parents=True)
    target.write_text("func A() {\n\tslow()\n}\n")
    apply_patches(tmp_path, (Patch("internal/x.go", "\tslow()\n", "\tfast()\n"),))
    assert target.read_text() == "func A() {\n\tfast()\n}\n"


@pytest.mark.parametrize("text", ["func A() {}\n", "\tslow()\n\tslow()\n"])
def test_a_patch_matching_zero_or_several_times_fails_the_build(tmp_path: Path, text: str) -> None:
    (tmp_path / "x.go").write_text(text)
    with pytest.raises(proc.SetupError, match="expected once"):
        apply_patches(tmp_path, (Patch("x.go", "\tslow()\n", "\tfast()\n"),))


def test_every_patch_targets_a_go_file_and_changes_it() -> None:
    assert PATCHES and all(p.path.endswith(".go") and p.old != p.new for p in PATCHES)
