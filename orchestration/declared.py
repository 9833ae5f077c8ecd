"""Handles on declared instances (``assets/defs/<domain>/<source>/defs.yaml``) for jobs, the demo and tests.

``orchestration/definitions.py`` loads the whole folder into the code location; a domain module that
needs one declared definition by name (the raw asset to run, the sensor to tick) builds only that
declaration, so one source's declaration never depends on another's loading.
"""

import functools
import warnings
from pathlib import Path

from dagster import (
    AssetsDefinition,
    BetaWarning,
    ComponentTree,
    Definitions,
    PreviewWarning,
    SensorDefinition,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFS_ROOT = PROJECT_ROOT / "assets" / "defs"


@functools.cache
def _tree() -> ComponentTree:
    return ComponentTree.for_project(PROJECT_ROOT)


@functools.cache
def declared(source: str | None = None) -> Definitions:
    """What the declaration ``assets/defs/<source>/defs.yaml`` builds (``source`` = ``<domain>/<name>``);
    without ``source``, every declaration (what ``load_from_defs_folder`` builds). One tree caches each
    declaration's definitions, so the code location and these handles share them (built once)."""
    with warnings.catch_warnings():
        # As load_from_defs_folder does: the tree's own code-reference metadata is a beta API.
        warnings.simplefilter("ignore", BetaWarning)
        warnings.simplefilter("ignore", PreviewWarning)
        return _tree().build_defs(source)


def declared_assets(source: str, name: str) -> AssetsDefinition:
    """The assets definition whose op is ``name`` (e.g. ``raw_exportacao``) in a declaration."""
    for item in declared(source).assets or ():
        if isinstance(item, AssetsDefinition) and item.node_def.name == name:
            return item
    raise KeyError(f"assets/defs/{source} declares no asset named {name!r}")


def declared_sensor(source: str, name: str) -> SensorDefinition:
    """The sensor called ``name`` (e.g. ``export_file_drop_sensor``) in a declaration."""
    for item in declared(source).sensors or ():
        if isinstance(item, SensorDefinition) and item.name == name:
            return item
    raise KeyError(f"assets/defs/{source} declares no sensor named {name!r}")
