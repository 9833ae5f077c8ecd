"""The platform's settings areas: its services, the landing zone, the read API and how it is operated.

Declared with :func:`resources.settings_base.env`; :mod:`resources.settings` gathers these areas and
the domains' (:mod:`resources.settings_domains`) into the registry the README, ``.env.example`` and
the deployment files are checked against, and is where code imports them from.
"""

from __future__ import annotations

from typing import Literal

from resources.settings_base import AreaSettings, Flag, env


class WarehouseSettings(AreaSettings):
    url: str = env(
        "WAREHOUSE_URL",
        "duckdb:///data/warehouse.duckdb",
        "SQLAlchemy URL of the warehouse: embedded DuckDB file, or postgresql+psycopg://user:pw@host:5432/db",
        secret=True,
    )


class LandingSettings(AreaSettings):
    """The landing zone and its file-drop sensors."""

    root: str = env(
        "AFLUENTE_LANDING_DIR", "data/landing", "Root of the landing zone; each domain has a sub-folder"
    )
    settle_seconds: float = env(
        "AFLUENTE_LANDING_SETTLE_SECONDS",
        "2",
        "A dropped file is picked up only after it has not changed for this many seconds",
        ge=0,
    )
    unterminated_seconds: float = env(
        "AFLUENTE_LANDING_UNTERMINATED_SECONDS",
        "900",
        "A text file without its final newline (writer mid-line) waits this long unchanged before it is read",
        ge=0,
    )
    marker_feeds: str = env(
        "AFLUENTE_LANDING_MARKER_FEEDS",
        "none",
        "Feeds (comma-separated: exports, commerce, usage) whose files wait for a .done/_SUCCESS marker",
    )
    max_line_bytes: int = env(
        "AFLUENTE_LANDING_MAX_LINE_BYTES",
        "1048576",
        "A landed text file with a longer line is quarantined at once (JSON documents are exempt)",
        ge=1,
    )
    sensor_interval_seconds: int = env(
        "AFLUENTE_SENSOR_INTERVAL_SECONDS", "30", "Minimum seconds between file-drop sensor ticks", ge=0
    )
    max_files_per_tick: int = env(
        "AFLUENTE_MAX_FILES_PER_TICK", "50", "Upper bound of runs one file-drop sensor tick requests", ge=1
    )


class SelfHealingSettings(AreaSettings):
    """Re-execution of failed runs and the run-worker watchdog."""

    max_auto_reexecutions: int = env(
        "AFLUENTE_MAX_AUTO_REEXECUTIONS",
        "3",
        "Automatic re-executions of a run that failed on a transient error before the incident gives up",
        ge=0,
    )
    run_worker_start_seconds: int = env(
        "AFLUENTE_RUN_WORKER_START_SECONDS",
        "60",
        "A run STARTING this long without a live run worker (launch lost: daemon or code server died) "
        "is failed and retried",
        ge=0,
    )


class ScheduleSettings(AreaSettings):
    """Cron schedules of the domains and their timezone."""

    exports_refresh_cron: str = env(
        "EXPORTS_REFRESH_CRON", "0 1 * * *", "Cron of the scheduled refresh of the export reports"
    )
    timezone: str = env("AFLUENTE_TIMEZONE", "UTC", "Timezone of schedules")
    commerce_data_tests_cron: str = env(
        "COMMERCE_DATA_TESTS_CRON",
        "*/5 * * * *",
        "When the data tests of the commerce models run (streaming refresh runs leave them out)",
    )
    usage_index_refresh_cron: str = env(
        "USAGE_INDEX_REFRESH_CRON", "0 * * * *", "Cron of the scheduled rebuild of the usage insight indices"
    )


class KafkaSettings(AreaSettings):
    bootstrap_servers: str = env(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers (host:port, comma-separated)"
    )


class MongoSettings(AreaSettings):
    uri: str = env(
        "MONGO_URI", "mongodb://127.0.0.1:27017/", "MongoDB (or FerretDB) connection URI", secret=True
    )


class SearchSettings(AreaSettings):
    """The search engine (insight indices, system_logs, /insights)."""

    url: str = env("SEARCH_URL", "http://127.0.0.1:9200", "Base URL of OpenSearch / Elasticsearch")
    engine: Literal["opensearch", "elasticsearch"] = env(
        "SEARCH_ENGINE", "opensearch", "Search client flavour: opensearch or elasticsearch"
    )
    enabled: Flag = env(
        "SEARCH_ENABLED",
        "true",
        "false: no search engine here (make demo): search/* indices are not built by automation nor "
        "watched for freshness, their schedule is stopped, /insights answers 503",
    )
    user: str = env(
        "ELASTICSEARCH_USER", "", "Basic-auth user of a secured Elasticsearch/OpenSearch (empty: none)"
    )
    password: str = env(
        "ELASTICSEARCH_PASSWORD", "", "Basic-auth password of that user (empty: none)", secret=True
    )


class ApiSettings(AreaSettings):
    """The read API (python -m api)."""

    host: str = env("API_HOST", "127.0.0.1", "Bind address of the read API (python -m api)")
    port: int = env("API_PORT", "8000", "Port of the read API", ge=1, le=65535)
    workers: int = env(
        "API_WORKERS",
        "0",
        "Worker processes of the read API (0: one per CPU core on PostgreSQL, one on DuckDB)",
        ge=0,
    )
    auth: Flag = env(
        "API_AUTH",
        "false",
        "true: data paths need an API key with their role (viewer, ops, writer); /health, /ready stay open",
    )
    keys: str = env(
        "API_KEYS",
        "",
        "API keys as name:role[+role]:sha256-of-key, comma-separated (python -m api.access new-key ROLE)",
    )
    keys_file: str = env(
        "API_KEYS_FILE",
        "",
        "Secret file with one name:role[+role]:sha256 entry per line (read with API_KEYS)",
    )
    rate_limit: str = env(
        "API_RATE_LIMIT",
        "1200/minute",
        "Requests one API key may make (limits notation, e.g. 100/second); off: no limit",
    )
    rate_limit_storage: str = env(
        "API_RATE_LIMIT_STORAGE",
        "memory://",
        "Where rate-limit counts live: memory:// (per worker) or memcached:// / redis:// (shared)",
    )
    cache: Flag = env(
        "API_CACHE", "true", "Keep mart answers in memory until the warehouse changes (false: always query)"
    )
    cache_max_entries: int = env(
        "API_CACHE_MAX_ENTRIES",
        "4096",
        "Upper bound of answers the read API keeps in memory per worker",
        ge=1,
    )
    metrics_kafka_lag: Flag = env(
        "API_METRICS_KAFKA_LAG",
        "true",
        "Prometheus lag gauges ask Kafka for end offsets (false: only the warehouse ledger is read)",
    )


class DashboardSettings(AreaSettings):
    dagster_ui_url: str = env(
        "DAGSTER_UI_URL",
        "http://127.0.0.1:3000",
        "Base URL of the Dagster UI the dashboard links to (operations page, each asset)",
    )
    refresh_seconds: int = env(
        "DASHBOARD_REFRESH_SECONDS", "30", "Seconds between automatic refreshes of a dashboard page"
    )


class LoggingSettings(AreaSettings):
    level: str = env(
        "AFLUENTE_LOG_LEVEL", "INFO", "Level of the platform's python loggers in the read API and CLIs"
    )
    format: str = env(
        "AFLUENTE_LOG_FORMAT",
        "json",
        "Log lines of the read API: json (one object per line, with run id / asset key) or text",
    )
    file: str = env(
        "AFLUENTE_LOG_FILE",
        "",
        "The read API and CLIs also append their JSON log lines to this file (empty: stderr only)",
    )


class OpsSettings(AreaSettings):
    """Operations: freshness of aggregates (mart/*, search/*) and API health."""

    exports_freshness_hours: int = env(
        "EXPORTS_FRESHNESS_HOURS",
        "26",
        "Export reports are stale (WARN) this many hours after their last build (daily refresh + slack)",
    )
    commerce_freshness_minutes: int = env(
        "COMMERCE_FRESHNESS_MINUTES",
        "60",
        "Commerce marts are stale (WARN) this many minutes after their last build (rebuilt as events land)",
    )
    usage_freshness_minutes: int = env(
        "USAGE_FRESHNESS_MINUTES",
        "90",
        "Usage marts and search indices are stale (WARN) this many minutes after their last build (hourly)",
    )
    default_freshness_minutes: int = env(
        "FRESHNESS_DEFAULT_MINUTES", "1440", "Freshness threshold of aggregates of a domain without its own"
    )
    freshness_sensor_interval_seconds: int = env(
        "FRESHNESS_SENSOR_INTERVAL_SECONDS",
        "120",
        "Minimum seconds between freshness sensor ticks (evaluates every aggregate, writes ops.freshness)",
        ge=0,
    )
    health_incident_window_hours: int = env(
        "OPS_HEALTH_INCIDENT_WINDOW_HOURS",
        "24",
        "/health is degraded while an unresolved incident (gave_up, or not transient) is under N hours old",
        ge=0,
    )


class MonitorSettings(AreaSettings):
    """The monitor: every platform topic and JSON log line into the system_logs search indices."""

    topics: str = env(
        "SYSTEM_LOGS_TOPICS",
        "COMMERCE_KAFKA_TOPIC,SUBSCRIPTIONS_COMMANDS_TOPIC,SUBSCRIPTIONS_RESPONSES_TOPIC",
        "Kafka topics the monitor indexes into system_logs (comma-separated; a registered setting's name "
        "stands for its value)",
    )
    log_files: str = env(
        "SYSTEM_LOGS_LOG_FILES",
        "data/logs/*.jsonl*",
        "Glob patterns (comma-separated) of the JSON log files the monitor indexes (AFLUENTE_LOG_FILE "
        "writes one)",
    )
    alias: str = env(
        "SYSTEM_LOGS_ALIAS",
        "system_logs",
        "Alias the monitor's daily indices (<alias>-YYYY.MM.DD) are read through; also the index "
        "template's name",
    )
    retention_days: int = env(
        "SYSTEM_LOGS_RETENTION_DAYS",
        "14",
        "Daily system_logs indices older than this many days are deleted (0: keep all)",
        ge=0,
    )
    fallback_dir: str = env(
        "SYSTEM_LOGS_FALLBACK_DIR",
        "data/system_logs_fallback",
        "Where documents wait (JSONL segments) while the search engine is unreachable; replayed when it "
        "is back",
    )
    fallback_max_bytes: int = env(
        "SYSTEM_LOGS_FALLBACK_MAX_BYTES",
        "268435456",
        "Bound of the fallback directory; documents beyond it are dropped and counted (dropped_total)",
        ge=0,
    )
    max_docs_per_run: int = env(
        "SYSTEM_LOGS_MAX_DOCS_PER_RUN",
        "20000",
        "Upper bound of new Kafka messages + log lines one monitor run reads",
        ge=1,
    )
    sensor_interval_seconds: int = env(
        "SYSTEM_LOGS_SENSOR_INTERVAL_SECONDS", "30", "Minimum seconds between system_logs sensor ticks", ge=0
    )
