"""Every environment variable the platform reads: typed, with its safe default and meaning, by area.

Each area is a ``pydantic-settings`` class (``CommerceSettings``, ``SearchSettings``, ...) whose fields
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
from typing import Any, Literal, TypeVar

from resources.settings_base import AreaSettings, Flag, env
from resources.settings_base import SettingsError as SettingsError  # re-exported

T = TypeVar("T")


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


class CommerceSettings(AreaSettings):
    """The commerce clickstream (Kafka)."""

    topic: str = env(
        "COMMERCE_KAFKA_TOPIC", "commerce.events", "Kafka topic of the commerce clickstream events"
    )
    max_events_per_run: int = env(
        "COMMERCE_KAFKA_MAX_EVENTS_PER_RUN",
        "200000",
        "Upper bound of Kafka messages one commerce ingest run consumes (the sensor sizes ranges with it)",
        ge=1,
    )
    max_runs_per_tick: int = env(
        "COMMERCE_KAFKA_MAX_RUNS_PER_TICK",
        "4",
        "Upper bound of runs one Kafka offsets sensor tick requests",
        ge=1,
    )
    sensor_interval_seconds: int = env(
        "COMMERCE_KAFKA_SENSOR_INTERVAL_SECONDS",
        "2",
        "Minimum seconds between Kafka offsets sensor ticks",
        ge=0,
    )
    in_flight_timeout_seconds: int = env(
        "COMMERCE_KAFKA_IN_FLIGHT_TIMEOUT_SECONDS",
        "900",
        "A run unfinished after this many seconds no longer blocks its range from being requested again",
        ge=0,
    )
    refresh_when_caught_up: Flag = env(
        "COMMERCE_KAFKA_REFRESH_WHEN_CAUGHT_UP",
        "true",
        "When one ingest run catches up with the topic, it also rebuilds the commerce staging and marts",
    )
    max_event_bytes: int = env(
        "COMMERCE_MAX_EVENT_BYTES",
        "65536",
        "Larger commerce messages go to the dead-letter table as oversized_payload",
        ge=1,
    )


class UsageSettings(AreaSettings):
    """AI-assistant usage (MongoDB -> warehouse -> search indices) and its alerts."""

    mongo_database: str = env(
        "USAGE_MONGO_DATABASE", "afluente", "MongoDB database holding the AI-assistant usage events"
    )
    mongo_collection: str = env(
        "USAGE_MONGO_COLLECTION", "usage_events", "MongoDB collection of AI-assistant usage events"
    )
    mongo_max_batch_docs: int = env(
        "USAGE_MONGO_MAX_BATCH_DOCS",
        "200000",
        "Upper bound of documents one MongoDB ingest run reads (the sensor sizes batches with it)",
        ge=1,
    )
    mongo_safety_lag_seconds: float = env(
        "USAGE_MONGO_SAFETY_LAG_SECONDS",
        "5",
        "Documents changed in the last N seconds wait for the next tick (late writers are not skipped)",
        ge=0,
    )
    mongo_sensor_interval_seconds: int = env(
        "USAGE_MONGO_SENSOR_INTERVAL_SECONDS", "30", "Minimum seconds between MongoDB watermark ticks", ge=0
    )
    mongo_peek_timeout_ms: int = env(
        "USAGE_MONGO_PEEK_TIMEOUT_MS",
        "5000",
        "Server time limit of the sensor's peek query; on timeout the run falls back to sort + limit",
        ge=0,
    )
    alert_daily_tokens: int = env(
        "USAGE_ALERT_DAILY_TOKENS", "250000", "Alert when a user's tokens in one day exceed this", ge=0
    )
    alert_spike_factor: float = env(
        "USAGE_ALERT_SPIKE_FACTOR",
        "3.0",
        "Alert when a user's day exceeds this multiple of their trailing daily average",
        gt=0,
    )
    alert_trailing_days: int = env(
        "USAGE_ALERT_TRAILING_DAYS", "7", "Calendar days of the trailing average used by spike alerts", ge=1
    )
    alert_spike_min_tokens: int = env(
        "USAGE_ALERT_SPIKE_MIN_TOKENS",
        "50000",
        "A spike alert needs at least this many tokens that day (ignores tiny users' noise)",
        ge=0,
    )
    index_prefix: str = env("USAGE_INDEX_PREFIX", "afluente-", "Prefix of the usage insight index aliases")
    index_keep_versions: int = env(
        "USAGE_INDEX_KEEP_VERSIONS", "2", "Versioned indices kept per alias (serving one included)", ge=1
    )
    index_bulk_threads: int = env(
        "USAGE_INDEX_BULK_THREADS", "2", "Parallel bulk threads when building an insight index", ge=1
    )
    index_bulk_chunk_docs: int = env(
        "USAGE_INDEX_BULK_CHUNK_DOCS",
        "2000",
        "Documents per bulk request when building an insight index",
        ge=1,
    )


class SubscriptionsSettings(AreaSettings):
    """The subscriptions platform (commands on Kafka, outcomes published back)."""

    commands_topic: str = env(
        "SUBSCRIPTIONS_COMMANDS_TOPIC",
        "user_events",
        "Kafka topic of the subscriptions commands (one event per accepted POST, keyed by user id)",
    )
    produce_timeout_ms: int = env(
        "SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS",
        "5000",
        "The command API answers 503 when Kafka has not confirmed a command within this many ms",
        ge=1,
    )
    idempotency_cache_size: int = env(
        "SUBSCRIPTIONS_IDEMPOTENCY_CACHE_SIZE",
        "50000",
        "Commands each API worker remembers for Idempotency-Key retries and /status (LRU)",
        ge=1,
    )
    responses_topic: str = env(
        "SUBSCRIPTIONS_RESPONSES_TOPIC",
        "response_events",
        "Kafka topic the subscriptions processing publishes each command's outcome to "
        "(keyed by correlation_id)",
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
