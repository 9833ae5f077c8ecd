"""The domains' settings areas: commerce clickstream, AI-assistant usage and the subscriptions platform.

Declared with :func:`resources.settings_base.env`; :mod:`resources.settings` gathers these areas and
the platform's (:mod:`resources.settings_platform`) into the registry, and is where code imports them from.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationInfo, field_validator

from resources.settings_base import AreaSettings, Flag, env


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
        "Commands each API worker remembers for Idempotency-Key retries and /status (LRU in front of the "
        "shared idempotency store)",
        ge=1,
    )
    idempotency_store: Literal["auto", "postgres", "sqlite"] = env(
        "SUBSCRIPTIONS_IDEMPOTENCY_STORE",
        "auto",
        "Where API workers share Idempotency-Key reservations: postgres (ops.command_idempotency in the "
        "warehouse's server), sqlite (a file shared by the workers of one host); auto: postgres when the "
        "warehouse is PostgreSQL, else sqlite",
    )
    idempotency_sqlite_path: str = env(
        "SUBSCRIPTIONS_IDEMPOTENCY_SQLITE_PATH",
        "",
        "SQLite file of the idempotency store (empty: the DuckDB warehouse file's path + "
        ".idempotency.sqlite3)",
    )
    idempotency_retention_hours: float = env(
        "SUBSCRIPTIONS_IDEMPOTENCY_RETENTION_HOURS",
        "24",
        "An Idempotency-Key is remembered this many hours; older reservations are deleted and the key "
        "may name a new request",
        gt=0,
    )
    idempotency_takeover_seconds: float = env(
        "SUBSCRIPTIONS_IDEMPOTENCY_TAKEOVER_SECONDS",
        "10",
        "A retry waits this long for a reservation whose worker has not confirmed its event, then "
        "produces it itself (at least SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS + 1 s)",
        gt=0,
    )
    responses_topic: str = env(
        "SUBSCRIPTIONS_RESPONSES_TOPIC",
        "response_events",
        "Kafka topic the subscriptions processing publishes each command's outcome to "
        "(keyed by correlation_id)",
    )

    @field_validator("idempotency_takeover_seconds")
    @classmethod
    def _takeover_outlasts_a_delivery(cls, value: float, info: ValidationInfo) -> float:
        """A reservation younger than one delivery attempt may still be producing: no takeover before."""
        timeout_ms = info.data.get("produce_timeout_ms")
        if timeout_ms is not None and value * 1000 < timeout_ms + 1000:
            raise ValueError(
                f"must be at least SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS + 1 s ({(timeout_ms + 1000) / 1000:g} s)"
            )
        return value
