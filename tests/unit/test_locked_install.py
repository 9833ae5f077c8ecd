"""uv.lock decides every installed version: the environment equals it, and installing never resolves.

These tests run the project's own uv (a locked package) against copies of pyproject.toml and uv.lock;
they need no service and no network (``--offline`` with an empty cache).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
# Seeded into every virtualenv by `python -m venv`; not a project dependency.
VENV_SEED = {"pip", "setuptools"}


def _uv(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_CACHE_DIR": str(cache), "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [str(UV), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _locked_for_this_interpreter(cache: Path) -> dict[str, str]:
    """``name -> version`` of every locked package (dev extra included) whose markers hold here."""
    exported = _uv(
        "export", "--frozen", "--offline", "--extra", "dev", "--no-hashes", "--no-emit-project",
        "--no-header", cwd=ROOT, cache=cache,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    locked: dict[str, str] = {}
    for line in exported.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, _, marker = line.partition(";")
        name, _, version = requirement.strip().partition("==")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        locked[canonicalize_name(name)] = version
    return locked


def test_installed_versions_equal_the_lock(tmp_path: Path) -> None:
    locked = _locked_for_this_interpreter(tmp_path / "cache")
    assert {"dagster", "duckdb", "pandas", "uv", "pytest"} <= set(locked)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    installed.pop("afluente", None)
    for name in VENV_SEED:
        installed.pop(name, None)
    differing = {n: (locked.get(n), installed.get(n)) for n in set(locked) | set(installed)}
    differing = {n: pair for n, pair in differing.items() if pair[0] != pair[1]}
    assert not differing, f"(locked, installed) differ, run `make install`: {differing}"


def test_uv_agrees_the_environment_is_in_sync_without_any_index(tmp_path: Path) -> None:
    """With an empty cache and no network, uv has nothing to resolve or download: the lock alone decides.

    A newer release published on the index cannot change what `make install` installs.
    """
    checked = _uv(
        # The project itself is an editable build (its freshness is judged from uv's cache, empty here);
        # every dependency is checked against the lock.
        "sync", "--locked", "--check", "--offline", "--extra", "dev", "--no-install-project", "--inexact",
        "--python", sys.executable, cwd=ROOT, cache=tmp_path / "cache",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Would make no changes" in checked.stderr


def _project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "uv.lock", "Makefile"):
        shutil.copy(ROOT / name, project / name)
    return project


def test_the_lock_matches_pyproject(tmp_path: Path) -> None:
    checked = _uv("lock", "--check", "--offline", cwd=_project_copy(tmp_path), cache=tmp_path / "cache")
    assert checked.returncode == 0, f"uv.lock is stale, run `make lock`: {checked.stderr}"


def test_make_install_refuses_a_lock_that_no_longer_matches_pyproject(tmp_path: Path) -> None:
    """A dependency added to pyproject.toml without `make lock`: the install stops, touching nothing."""
    project = _project_copy(tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("dependencies = [\n", 'dependencies = [\n    "six>=1.16",\n', 1))
    venv = project / ".venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "uv"):  # the installed interpreter and uv, so nothing is bootstrapped
        (venv / "bin" / tool).symlink_to(Path(sys.executable).with_name(tool))
    before = sorted(p.name for p in venv.iterdir())
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "cache"), "MAKEFLAGS": ""}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        ["make", "--no-print-directory", "install"], cwd=project, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "make lock" in result.stdout + result.stderr
    assert not re.search(r"uv sync", result.stdout.split("make lock")[-1])
    assert sorted(p.name for p in venv.iterdir()) == before  # no install stamp, nothing synced
