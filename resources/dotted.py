"""``package.module:attribute`` references: how a YAML declaration names a rule written in Python."""

import importlib
from typing import Any


def import_dotted(path: str, what: str = "reference") -> Any:
    """The object ``path`` names (``package.module:attribute``, the attribute may be dotted)."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"{what}: {path!r} must be written package.module:attribute")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{what}: {module_name} has no attribute {attribute!r}") from None
    return target
