"""Every environment variable the platform reads: typed, with its safe default and meaning, by area.

Each area is a ``pydantic-settings`` class (``CommerceSettings``, ``SearchSettings``, ...; declared in
:mod:`resources.settings_platform` or :mod:`resources.settings_domains`, imported from here) whose fields
carry the variable's name, its default written as in the environment (the README shows the same text)
and a description. Code reads typed attributes, fresh from the environment at each call:
``CommerceSettings.current().max_events_per_run`` (``current()`` re-validates only when one of the
area's variables changed, so tests that monkeypatch a variable see it at once). A bad value fails with
:class:`SettingsError` naming the variable and what it should be.

``SETTINGS`` (name, default, description, secret) is derived from the classes: the README table,
``.env.example``, docker-compose.yml and the docker launcher are checked against it in tests. Nothing
here writes to ``os.environ``: the Dagster resources are built from these values by
``orchestration/definitions.py`` (secrets stay ``EnvVar`` there). :func:`setting` reads one setting by
name, for declarations (``{setting: NAME}`` in a component's YAML, ``SYSTEM_LOGS_TOPICS``) that refer
to settings by name. Dagster-free: the read API imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from resources.settings_base import AreaSettings
from resources.settings_base import SettingsError as SettingsError  # re-exported
from resources.settings_domains import CommerceSettings, SubscriptionsSettings, UsageSettings
from resources.settings_platform import (
    ApiSettings,
    DashboardSettings,
    KafkaSettings,
    LandingSettings,
    LoggingSettings,
    MongoSettings,
    MonitorSettings,
    OpsSettings,
    ScheduleSettings,
    SearchSettings,
    SelfHealingSettings,
    WarehouseSettings,
)

T = TypeVar("T")


AREAS: tuple[type[AreaSettings], ...] = (
    WarehouseSettings,
    LandingSettings,
    SelfHealingSettings,
    ScheduleSettings,
    KafkaSettings,
    MongoSettings,
    SearchSettings,
    ApiSettings,
    DashboardSettings,
    LoggingSettings,
    CommerceSettings,
    UsageSettings,
    SubscriptionsSettings,
    OpsSettings,
    MonitorSettings,
)


# ----- the registry, derived from the areas


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    description: str
    secret: bool = False


def _registry() -> dict[str, tuple[type[AreaSettings], str, Setting]]:
    found: dict[str, tuple[type[AreaSettings], str, Setting]] = {}
    for area in AREAS:
        for field_name, info in area.model_fields.items():
            name = str(info.validation_alias)
            if name in found:
                raise RuntimeError(f"{name} is declared by {found[name][0].__name__} and {area.__name__}")
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            item = Setting(name, str(info.default), info.description or "", bool(extra.get("secret")))
            found[name] = (area, field_name, item)
    return found


_BY_NAME = _registry()
SETTINGS: tuple[Setting, ...] = tuple(entry[2] for entry in _BY_NAME.values())


def setting(name: str) -> Any:
    """The typed value of a setting named at run time (declarations refer to settings by name).

    Raises ``KeyError`` for a name no area declares."""
    area, field_name, _ = _BY_NAME[name]
    return getattr(area.current(), field_name)


def setting_as(name: str, kind: type[T]) -> T:
    """:func:`setting`, checked to be of ``kind`` (an int setting where a declaration needs an int)."""
    value = setting(name)
    if kind is float and type(value) is int:
        return float(value)  # type: ignore[return-value]
    if type(value) is not kind:
        raise TypeError(f"{name} is a {type(value).__name__} setting; {kind.__name__} is needed here")
    return value
