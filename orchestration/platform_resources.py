"""The shared resources of the code location, bound from the typed settings (``resources/settings.py``).

Each resource field is bound one of two ways:

- **a value**, the typed setting as read when the code location loads (``KAFKA_BOOTSTRAP_SERVERS``,
  ``AFLUENTE_LANDING_DIR``, ``SEARCH_URL``, ...): its default applies when the variable is unset, and a
  bad value fails the load with the variable's name. Run workers load the code location again with the
  same environment, so a value is what an ``EnvVar`` would resolve to; the UI shows it, which helps.
- **an ``EnvVar``**, for a secret that is set (``WAREHOUSE_URL``, ``MONGO_URI``, ``ELASTICSEARCH_PASSWORD``,
  marked ``secret=True`` in the settings): Dagster resolves it in each process and the UI shows only the
  variable's name, never a password. When a secret is unset its default holds no secret (the embedded
  DuckDB file, a local MongoDB, no password) and is bound as a value.

So nothing rewrites ``os.environ`` (the former ``apply_defaults()`` filled every unset variable at import
so that ``EnvVar`` could resolve), and the defaults live in one place.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableIOManager, ConfigurableResource, EnvVar

from io_managers.warehouse_io_manager import WarehouseIOManager
from resources.kafka import KafkaResource
from resources.landing_zone import LandingZoneResource
from resources.mongo import MongoResource
from resources.search import SearchResource
from resources.settings import (
    SETTINGS,
    KafkaSettings,
    LandingSettings,
    SearchSettings,
    UsageSettings,
    setting,
)
from resources.warehouse import WarehouseResource

_SECRETS = {item.name for item in SETTINGS if item.secret}


def secret(name: str) -> Any:
    """A secret setting: ``EnvVar(name)`` when the variable is set (validated now), else its default
    (``None`` when empty)."""
    if name not in _SECRETS:
        raise ValueError(f"{name} is not a secret setting (resources/settings.py)")
    value = setting(name)
    if os.environ.get(name):
        return EnvVar(name)
    return value or None


def warehouse_resource() -> WarehouseResource:
    return WarehouseResource(url=secret("WAREHOUSE_URL"))


def kafka_resource() -> KafkaResource:
    return KafkaResource(bootstrap_servers=KafkaSettings.current().bootstrap_servers)


def landing_zone_resource() -> LandingZoneResource:
    return LandingZoneResource(root=LandingSettings.current().root)


def search_resource() -> SearchResource:
    """The search engine, with the basic-auth credentials the read API uses too (sent when a user is set)."""
    settings = SearchSettings.current()
    return SearchResource(
        url=settings.url,
        engine=settings.engine,
        username=settings.user or None,
        password=secret("ELASTICSEARCH_PASSWORD"),
    )


def platform_resources() -> dict[str, ConfigurableResource | ConfigurableIOManager]:
    """Every shared resource by key: warehouse, landing zone, IO manager, Kafka, MongoDB, search."""
    warehouse = warehouse_resource()
    return {
        "warehouse": warehouse,
        "landing_zone": landing_zone_resource(),
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "kafka": kafka_resource(),
        "mongo": MongoResource(uri=secret("MONGO_URI"), database=UsageSettings.current().mongo_database),
        "search": search_resource(),
    }
