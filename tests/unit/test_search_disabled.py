"""SEARCH_ENABLED=false (``make demo``: no search engine): nothing that needs the engine is left to fail.

Settings are read when the code location loads, so the definitions are loaded in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app

REPO = Path(__file__).resolve().parents[2]
USAGE_INDICES = {f"search/usage_{name}" for name in ("top_users", "daily", "alerts", "prompts")}

_PROBE = """
import json
from orchestration.definitions import defs
from orchestration.freshness import aggregates_of
schedule = next(s for s in defs.schedules if s.name == "rebuild_usage_insight_indices_hourly")
specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
checks = sorted(
    f"{c.asset_key.to_user_string()}:{c.name}"
    for a in defs.asset_checks or [] for c in a.check_specs if c.name == "freshness"
)
print(json.dumps({
    "schedule_status": str(schedule.default_status),
    "schedule_description": schedule.description,
    "search_automation": {
        k: s.automation_condition is not None for k, s in specs.items() if k.startswith("search/")
    },
    "aggregates": [a.key.to_user_string() for a in aggregates_of(defs)],
    "freshness_checks": checks,
}))
"""


def _load(search_enabled: str) -> dict:
    env = {**os.environ, "SEARCH_ENABLED": search_enabled}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_a_search_engine_indices_are_neither_built_nor_watched_and_their_schedule_is_stopped() -> (
    None
):
    off, on = _load("false"), _load("true")

    assert on["schedule_status"].endswith("RUNNING")
    assert off["schedule_status"].endswith("STOPPED")
    assert "SEARCH_ENABLED=false" in off["schedule_description"]

    assert all(on["search_automation"][key] for key in USAGE_INDICES)
    assert off["search_automation"].keys() == on["search_automation"].keys()
    assert not any(off["search_automation"].values())

    search = {key for key in on["aggregates"] if key.startswith("search/")}
    assert search >= USAGE_INDICES
    assert set(off["aggregates"]) == set(on["aggregates"]) - search
    assert not any(check.startswith("search/") for check in off["freshness_checks"])
    assert {check.split(":")[0] for check in on["freshness_checks"]} >= search


@pytest.mark.parametrize("path", ["/insights/top-users", "/insights/daily", "/insights/alerts"])
def test_insights_answer_a_clear_503_without_a_search_engine(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_ENABLED", "false")
    with TestClient(create_app(f"duckdb:///{tmp_path / 'w.duckdb'}")) as client:
        answer = client.get(path)
    assert answer.status_code == 503
    assert answer.json()["detail"] == "search engine unavailable: not configured here (SEARCH_ENABLED=false)"
