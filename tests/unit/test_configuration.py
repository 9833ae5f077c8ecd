"""Configuration stays documented: every registered setting appears in the README table with its default."""

import re
from pathlib import Path

from resources.settings import SETTINGS

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_table() -> dict[str, str]:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `([A-Z0-9_]+)` \| `([^`]*)`", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    table = _readme_table()
    for item in SETTINGS:
        assert item.name in table, f"{item.name} missing from the README configuration table"
        assert table[item.name] == item.default, f"{item.name}: README says {table[item.name]!r}"
