"""Shared by the source components: read one ``defs.yaml`` and resolve ``module:attribute`` rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from dagster.components import Resolvable

from resources.dotted import import_dotted

C = TypeVar("C", bound=Resolvable)


def component_from_defs_yaml(component: type[C], path: Path) -> C:
    """The instance ``path`` declares, for domain code that needs its tables (one file, no scan).

    The file must name ``component`` by its package path (``assets.sources.<mechanism>.<Class>``).
    """
    document = yaml.safe_load(path.read_text()) or {}
    expected = f"{component.__module__.rsplit('.', 1)[0]}.{component.__name__}"
    if document.get("type") != expected:
        raise ValueError(f"{path} declares {document.get('type')!r}, not {expected}")
    return component.resolve_from_dict(document.get("attributes") or {})


def callable_rule(path: str, field_name: str) -> Callable[..., Any]:
    """The domain rule a declaration field names (``package.module:function``), checked callable."""
    target = import_dotted(path, field_name)
    if not callable(target):
        raise ValueError(f"{field_name}: {path!r} is not a callable")
    return target
