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
    Setting(
        "AFLUENTE_LANDING_UNTERMINATED_SECONDS",
        "900",
        "A text file without its final newline (writer mid-line) waits this long unchanged before it is read",
    ),
    Setting(
        "AFLUENTE_LANDING_MARKER_FEEDS",
        "none",
        "Feeds (comma-separated: exports, commerce, usage) whose files wait for a .done/_SUCCESS marker",
    ),
    Setting(
        "AFLUENTE_LANDING_MAX_LINE_BYTES",
        "1048576",
        "A landed text file with a longer line is quarantined at once (JSON documents are exempt)",
    ),
    Setting("AFLUENTE_SENSOR_INTERVAL_SECONDS", "30", "Minimum seconds between file-drop sensor ticks"),
    Setting("AFLUENTE_MAX_FILES_PER_TICK", "50", "Upper bound of runs one file-drop sensor tick requests"),
    Setting(
        "AFLUENTE_MAX_AUTO_REEXECUTIONS",
        "3",
        "Automatic re-executions of a run that failed on a transient error before the incident gives up",
    ),
    Setting(
        "AFLUENTE_RUN_WORKER_START_SECONDS",
        "60",
        "A run STARTING this long without a live run worker (launch lost: daemon or code server died) "
        "is failed and retried",
    ),
    Setting("EXPORTS_REFRESH_CRON", "0 1 * * *", "Cron of the scheduled refresh of the export reports"),
    Setting("AFLUENTE_TIMEZONE", "UTC", "Timezone of schedules"),
    Setting(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers (host:port, comma-separated)"
    ),
    Setting("MONGO_URI", "mongodb://127.0.0.1:27017/", "MongoDB (or FerretDB) connection URI"),
    Setting("SEARCH_URL", "http://127.0.0.1:9200", "Base URL of OpenSearch / Elasticsearch"),
    Setting("SEARCH_ENGINE", "opensearch", "Search client flavour: opensearch or elasticsearch"),
    Setting(
        "SEARCH_ENABLED",
        "true",
        "false: no search engine here (make demo): search/* indices are not built by automation nor "
        "watched for freshness, their schedule is stopped, /insights answers 503",
    ),
    Setting("API_HOST", "127.0.0.1", "Bind address of the read API (python -m api)"),
    Setting("API_PORT", "8000", "Port of the read API"),
    Setting(
        "API_WORKERS",
        "0",
        "Worker processes of the read API (0: one per CPU core on PostgreSQL, one on DuckDB)",
    ),
    Setting(
        "API_AUTH",
        "false",
        "true: data paths need an API key with their role (viewer, ops, writer); /health, /ready stay open",
    ),
    Setting(
        "API_KEYS",
        "",
        "API keys as name:role[+role]:sha256-of-key, comma-separated (python -m api.access new-key ROLE)",
    ),
    Setting(
        "API_KEYS_FILE",
        "",
        "Secret file with one name:role[+role]:sha256 entry per line (read with API_KEYS)",
    ),
    Setting(
        "API_RATE_LIMIT",
        "1200/minute",
        "Requests one API key may make (limits notation, e.g. 100/second); off: no limit",
    ),
    Setting(
        "API_RATE_LIMIT_STORAGE",
        "memory://",
        "Where rate-limit counts live: memory:// (per worker) or memcached:// / redis:// (shared)",
    ),
    Setting(
        "API_CACHE", "true", "Keep mart answers in memory until the warehouse changes (false: always query)"
    ),
    Setting(
        "API_CACHE_MAX_ENTRIES", "4096", "Upper bound of answers the read API keeps in memory per worker"
    ),
    Setting(
        "API_METRICS_KAFKA_LAG",
        "true",
        "Prometheus lag gauges ask Kafka for end offsets (false: only the warehouse ledger is read)",
    ),
    Setting(
        "DAGSTER_UI_URL",
        "http://127.0.0.1:3000",
        "Base URL of the Dagster UI the dashboard links to (operations page, each asset)",
    ),
    Setting("DASHBOARD_REFRESH_SECONDS", "30", "Seconds between automatic refreshes of a dashboard page"),
    Setting("AFLUENTE_LOG_LEVEL", "INFO", "Level of the platform's python loggers in the read API and CLIs"),
    Setting(
        "AFLUENTE_LOG_FORMAT",
        "json",
        "Log lines of the read API: json (one object per line, with run id / asset key) or text",
    ),
    # commerce clickstream (Kafka)
    Setting("COMMERCE_KAFKA_TOPIC", "commerce.events", "Kafka topic of the commerce clickstream events"),
    Setting(
        "COMMERCE_KAFKA_MAX_EVENTS_PER_RUN",
        "200000",
        "Upper bound of Kafka messages one commerce ingest run consumes (the sensor sizes ranges with it)",
    ),
    Setting(
        "COMMERCE_KAFKA_MAX_RUNS_PER_TICK", "4", "Upper bound of runs one Kafka offsets sensor tick requests"
    ),
    Setting(
        "COMMERCE_KAFKA_SENSOR_INTERVAL_SECONDS", "2", "Minimum seconds between Kafka offsets sensor ticks"
    ),
    Setting(
        "COMMERCE_KAFKA_IN_FLIGHT_TIMEOUT_SECONDS",
        "900",
        "A run unfinished after this many seconds no longer blocks its range from being requested again",
    ),
    Setting(
        "COMMERCE_KAFKA_REFRESH_WHEN_CAUGHT_UP",
        "true",
        "When one ingest run catches up with the topic, it also rebuilds the commerce staging and marts",
    ),
    Setting(
        "COMMERCE_DATA_TESTS_CRON",
        "*/5 * * * *",
        "When the data tests of the commerce models run (streaming refresh runs leave them out)",
    ),
    Setting(
        "COMMERCE_MAX_EVENT_BYTES",
        "65536",
        "Larger commerce messages go to the dead-letter table as oversized_payload",
    ),
    # AI-assistant usage (MongoDB → search indices)
    Setting("USAGE_MONGO_DATABASE", "afluente", "MongoDB database holding the AI-assistant usage events"),
    Setting("USAGE_MONGO_COLLECTION", "usage_events", "MongoDB collection of AI-assistant usage events"),
    Setting(
        "USAGE_MONGO_MAX_BATCH_DOCS",
        "200000",
        "Upper bound of documents one MongoDB ingest run reads (the sensor sizes batches with it)",
    ),
    Setting(
        "USAGE_MONGO_SAFETY_LAG_SECONDS",
        "5",
        "Documents changed in the last N seconds wait for the next tick (late writers are not skipped)",
    ),
    Setting("USAGE_MONGO_SENSOR_INTERVAL_SECONDS", "30", "Minimum seconds between MongoDB watermark ticks"),
    Setting(
        "USAGE_MONGO_PEEK_TIMEOUT_MS",
        "5000",
        "Server time limit of the sensor's peek query; on timeout the run falls back to sort + limit",
    ),
    Setting("USAGE_ALERT_DAILY_TOKENS", "250000", "Alert when a user's tokens in one day exceed this"),
    Setting(
        "USAGE_ALERT_SPIKE_FACTOR",
        "3.0",
        "Alert when a user's day exceeds this multiple of their trailing daily average",
    ),
    Setting("USAGE_ALERT_TRAILING_DAYS", "7", "Calendar days of the trailing average used by spike alerts"),
    Setting(
        "USAGE_ALERT_SPIKE_MIN_TOKENS",
        "50000",
        "A spike alert needs at least this many tokens that day (ignores tiny users' noise)",
    ),
    Setting("USAGE_INDEX_PREFIX", "afluente-", "Prefix of the usage insight index aliases"),
    Setting("USAGE_INDEX_KEEP_VERSIONS", "2", "Versioned indices kept per alias (serving one included)"),
    Setting(
        "USAGE_INDEX_REFRESH_CRON", "0 * * * *", "Cron of the scheduled rebuild of the usage insight indices"
    ),
    Setting("USAGE_INDEX_BULK_THREADS", "2", "Parallel bulk threads when building an insight index"),
    Setting(
        "USAGE_INDEX_BULK_CHUNK_DOCS", "2000", "Documents per bulk request when building an insight index"
    ),
    # subscriptions platform (commands on Kafka)
    Setting(
        "SUBSCRIPTIONS_COMMANDS_TOPIC",
        "user_events",
        "Kafka topic of the subscriptions commands (one event per accepted POST, keyed by user id)",
    ),
    Setting(
        "SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS",
        "5000",
        "The command API answers 503 when Kafka has not confirmed a command within this many ms",
    ),
    Setting(
        "SUBSCRIPTIONS_IDEMPOTENCY_CACHE_SIZE",
        "50000",
        "Commands each API worker remembers for Idempotency-Key retries and /status (LRU)",
    ),
    Setting(
        "SUBSCRIPTIONS_RESPONSES_TOPIC",
        "response_events",
        "Kafka topic the subscriptions processing publishes each command's outcome to "
        "(keyed by correlation_id)",
    ),
    # operations: freshness of aggregates (mart/*, search/*) and API health
    Setting(
        "EXPORTS_FRESHNESS_HOURS",
        "26",
        "Export reports are stale (WARN) this many hours after their last build (daily refresh + slack)",
    ),
    Setting(
        "COMMERCE_FRESHNESS_MINUTES",
        "60",
        "Commerce marts are stale (WARN) this many minutes after their last build (rebuilt as events land)",
    ),
    Setting(
        "USAGE_FRESHNESS_MINUTES",
        "90",
        "Usage marts and search indices are stale (WARN) this many minutes after their last build (hourly)",
    ),
    Setting(
        "FRESHNESS_DEFAULT_MINUTES", "1440", "Freshness threshold of aggregates of a domain without its own"
    ),
    Setting(
        "FRESHNESS_SENSOR_INTERVAL_SECONDS",
        "120",
        "Minimum seconds between freshness sensor ticks (evaluates every aggregate, writes ops.freshness)",
    ),
    Setting(
        "OPS_HEALTH_INCIDENT_WINDOW_HOURS",
        "24",
        "/health is degraded while an unresolved incident (gave_up, or not transient) is under N hours old",
    ),
    # monitor: every platform topic and JSON log line into the system_logs search indices
    Setting(
        "SYSTEM_LOGS_TOPICS",
        "COMMERCE_KAFKA_TOPIC,SUBSCRIPTIONS_COMMANDS_TOPIC,SUBSCRIPTIONS_RESPONSES_TOPIC",
        "Kafka topics the monitor indexes into system_logs (comma-separated; a registered setting's name "
        "stands for its value)",
    ),
    Setting(
        "SYSTEM_LOGS_LOG_FILES",
        "data/logs/*.jsonl*",
        "Glob patterns (comma-separated) of the JSON log files the monitor indexes (AFLUENTE_LOG_FILE "
        "writes one)",
    ),
    Setting(
        "SYSTEM_LOGS_ALIAS",
        "system_logs",
        "Alias the monitor's daily indices (<alias>-YYYY.MM.DD) are read through; also the index "
        "template's name",
    ),
    Setting(
        "SYSTEM_LOGS_RETENTION_DAYS",
        "14",
        "Daily system_logs indices older than this many days are deleted (0: keep all)",
    ),
    Setting(
        "SYSTEM_LOGS_FALLBACK_DIR",
        "data/system_logs_fallback",
        "Where documents wait (JSONL segments) while the search engine is unreachable; replayed when it "
        "is back",
    ),
    Setting(
        "SYSTEM_LOGS_FALLBACK_MAX_BYTES",
        "268435456",
        "Bound of the fallback directory; documents beyond it are dropped and counted (dropped_total)",
    ),
    Setting(
        "SYSTEM_LOGS_MAX_DOCS_PER_RUN",
        "20000",
        "Upper bound of new Kafka messages + log lines one monitor run reads",
    ),
    Setting(
        "SYSTEM_LOGS_SENSOR_INTERVAL_SECONDS",
        "30",
        "Minimum seconds between system_logs sensor ticks",
    ),
    Setting(
        "AFLUENTE_LOG_FILE",
        "",
        "The read API and CLIs also append their JSON log lines to this file (empty: stderr only)",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def setting(name: str) -> str:
    """The value of a registered setting: the environment's, else the default."""
    return os.environ.get(name, _BY_NAME[name].default)


def setting_int(name: str) -> int:
    """A registered setting read as an integer."""
    return int(setting(name))


def setting_bool(name: str) -> bool:
    """A registered setting read as a flag (true/false, yes/no, on/off, 1/0)."""
    value = setting(name).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use true or false)")


def setting_float(name: str) -> float:
    """A registered setting read as a float."""
    return float(setting(name))


def apply_defaults() -> None:
    """Fill unset variables with their defaults so ``EnvVar`` resolves everywhere (UI, daemon, runs)."""
    for item in SETTINGS:
        os.environ.setdefault(item.name, item.default)
