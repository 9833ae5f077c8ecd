"""The machinery of the typed settings (``resources/settings.py`` declares the areas with it).

An area is a ``pydantic-settings`` class whose fields are declared with :func:`env`: the variable's
exact name, its default written as in the environment (validated like a value, so the README shows the
same text) and a description. ``Area.current()`` reads the environment at each call and validates again
only when one of the area's variables changed. Dagster-free.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

A = TypeVar("A", bound="AreaSettings")


class SettingsError(ValueError):
    """A configured value that cannot be used; the message names the variable."""


def _flag(value: Any) -> Any:
    """true/false, yes/no, on/off, 1/0 (any case, empty = false), as the platform always read flags."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError("is not a boolean (use true or false)")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]


def env(name: str, default: str, description: str, *, secret: bool = False, **constraints: Any) -> Any:
    """A field read from the variable ``name``; ``default`` is written as in the environment."""
    return Field(
        default,
        validation_alias=name,
        description=description,
        repr=not secret,
        json_schema_extra={"secret": secret},
        **constraints,
    )


class AreaSettings(BaseSettings):
    """Base of the areas: exact variable names, defaults validated like values, immutable."""

    model_config = SettingsConfigDict(case_sensitive=True, validate_default=True, frozen=True, extra="ignore")
    _current: ClassVar[tuple[tuple[str | None, ...], Any] | None] = None

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(_explain(type(self), error)) from None

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        return tuple(str(field.validation_alias) for field in cls.model_fields.values())

    @classmethod
    def current(cls: type[A]) -> A:
        """The area as the environment holds it now (validated again only when a variable changed)."""
        key = tuple(os.environ.get(name) for name in cls.env_names())
        cached = cls.__dict__.get("_current")
        if cached is not None and cached[0] == key:
            return cached[1]
        value = cls()
        cls._current = (key, value)
        return value


def _explain(area: type[AreaSettings], error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        field = _field_of(area, name)
        if field is None and name in area.model_fields:  # a default validated: loc is the field name
            field, name = name, str(area.model_fields[name].validation_alias)
        value = os.environ.get(name, area.model_fields[field].default if field else None)
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}={value!r}: {message}")
    return "invalid configuration: " + "; ".join(lines)


def _field_of(area: type[AreaSettings], name: str) -> str | None:
    return next((f for f, info in area.model_fields.items() if info.validation_alias == name), None)
