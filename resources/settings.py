"""Every environment variable the platform reads, with its safe default and meaning.

One registry serves three purposes: ``apply_defaults()`` lets ``EnvVar`` resolve to the embedded
defaults when nothing is set, the README configuration table is checked against it in tests, and
``.env.example`` mirrors it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    description: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "WAREHOUSE_URL",
        "duckdb:///data/warehouse.duckdb",
        "SQLAlchemy URL of the warehouse: embedded DuckDB file, or postgresql+psycopg://user:pw@host:5432/db",
    ),
    Setting("AFLUENTE_LANDING_DIR", "data/landing", "Root of the landing zone; each domain has a sub-folder"),
    Setting(
        "AFLUENTE_LANDING_SETTLE_SECONDS",
        "2",
        "A dropped file is picked up only after it has not changed for this many seconds",
    ),
    Setting("AFLUENTE_SENSOR_INTERVAL_SECONDS", "30", "Minimum seconds between file-drop sensor ticks"),
    Setting("AFLUENTE_MAX_FILES_PER_TICK", "50", "Upper bound of runs one file-drop sensor tick requests"),
    Setting("EXPORTS_REFRESH_CRON", "0 1 * * *", "Cron of the scheduled refresh of the export reports"),
    Setting("AFLUENTE_TIMEZONE", "UTC", "Timezone of schedules"),
    Setting("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers (host:port, comma-separated)"),
    Setting("MONGO_URI", "mongodb://127.0.0.1:27017/", "MongoDB (or FerretDB) connection URI"),
    Setting("SEARCH_URL", "http://127.0.0.1:9200", "Base URL of OpenSearch / Elasticsearch"),
    Setting("SEARCH_ENGINE", "opensearch", "Search client flavour: opensearch or elasticsearch"),
    Setting("API_HOST", "127.0.0.1", "Bind address of the read API (python -m api)"),
    Setting("API_PORT", "8000", "Port of the read API"),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def setting(name: str) -> str:
    """The value of a registered setting: the environment's, else the default."""
    return os.environ.get(name, _BY_NAME[name].default)


def apply_defaults() -> None:
    """Fill unset variables with their defaults so ``EnvVar`` resolves everywhere (UI, daemon, runs)."""
    for item in SETTINGS:
        os.environ.setdefault(item.name, item.default)
