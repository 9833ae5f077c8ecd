"""Prometheus exposition of the read API at ``/prometheus`` (``/metrics/*`` belongs to the seed's routes).

Three families:

* HTTP: ``afluente_http_requests_total{method,route,status}`` and
  ``afluente_http_request_duration_seconds{method,route}``, by route template (``/metrics/pais``, not
  the concrete URL), measured by a pure ASGI middleware around everything, cached answers included;
* warehouse: ``afluente_db_query_duration_seconds{dialect}``, timed by SQLAlchemy cursor events on the
  API's engine;
* pipeline gauges read from the warehouse at scrape time: the age of every aggregate
  (``ops.freshness``), the Kafka ledger's committed offsets and lag per partition (``raw.kafka_offsets``
  against the broker's end offsets when it answers), and the rows rejected or dead-lettered per table
  (every ``raw.*_rejects`` / ``raw.*_dead_letter`` table).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
PATH = "/prometheus"
ROUTE_SCOPE_KEY = "afluente.route"  # set by the response cache when it answers before routing

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "afluente_http_requests",
            "HTTP requests answered, by route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "afluente_http_request_duration_seconds",
            "Time from request to the last body byte, by route template",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.query_latency = Histogram(
            "afluente_db_query_duration_seconds",
            "Warehouse statements run by the read API",
            ("dialect",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def time_queries(self, engine: sa.Engine) -> None:
        """Observe every statement the engine runs (cursor-level events, so the driver time only)."""
        dialect = engine.dialect.name
        histogram = self.query_latency.labels(dialect)

        def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            conn.info.setdefault("afluente_query_started", []).append(time.perf_counter())

        def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
            started = conn.info.get("afluente_query_started")
            if started:
                histogram.observe(time.perf_counter() - started.pop())

        sa.event.listen(engine, "before_cursor_execute", _before)
        sa.event.listen(engine, "after_cursor_execute", _after)


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get(ROUTE_SCOPE_KEY)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request; serves the exposition at :data:`PATH`."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == PATH:
            body = self.metrics.exposition()
            headers = [
                (b"content-type", CONTENT_TYPE_LATEST.encode()),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        started = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = route_label(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


_REJECT_TABLES_SQL = sa.text(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema "
    "AND (table_name LIKE :rejects ESCAPE '!' OR table_name LIKE :dead ESCAPE '!') ORDER BY table_name"
)


class PipelineCollector(Collector):
    """Gauges read from the warehouse when Prometheus scrapes (each family independent of the others)."""

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[sa.Connection]],
        end_offsets: Callable[[str], Mapping[int, int] | None] | None = None,
    ) -> None:
        self.connect = connect
        self.end_offsets = end_offsets

    def collect(self) -> Iterator[Metric]:
        for family in (self._freshness, self._kafka_ledger, self._rejects):
            try:
                yield from family()
            except sa.exc.SQLAlchemyError as exc:  # a table not created yet, or the warehouse away
                log.debug("pipeline gauge %s skipped: %s", family.__name__, str(exc).splitlines()[0])

    def _freshness(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "afluente_aggregate_age_seconds",
            "Seconds since the aggregate was last updated (ops.freshness)",
            labels=("asset_key", "domain"),
        )
        threshold = GaugeMetricFamily(
            "afluente_aggregate_freshness_threshold_seconds",
            "Age past which the aggregate counts as stale",
            labels=("asset_key", "domain"),
        )
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT asset_key, domain, last_updated_at, threshold_minutes FROM ops.freshness")
            ).all()
        for asset_key, domain, updated, minutes in rows:
            threshold.add_metric((asset_key, domain), float(minutes) * 60)
            if updated is not None:
                age.add_metric((asset_key, domain), max(0.0, (now - updated).total_seconds()))
        yield age
        yield threshold

    def _kafka_ledger(self) -> Iterator[Metric]:
        committed = GaugeMetricFamily(
            "afluente_kafka_ledger_committed_offset",
            "Next offset after the contiguous range the warehouse holds, per partition",
            labels=("pipeline", "topic", "partition"),
        )
        covered = GaugeMetricFamily(
            "afluente_kafka_ledger_covered_messages",
            "Offsets recorded in the warehouse ledger, per partition",
            labels=("pipeline", "topic", "partition"),
        )
        lag = GaugeMetricFamily(
            "afluente_kafka_ledger_lag_messages",
            "Broker end offset minus the offsets the ledger covers, per partition",
            labels=("pipeline", "topic", "partition"),
        )
        with self.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pipeline, topic, kafka_partition, "
                    "MAX(CASE WHEN start_offset = 0 THEN next_offset ELSE 0 END), "
                    "SUM(next_offset - start_offset) FROM raw.kafka_offsets "
                    "GROUP BY pipeline, topic, kafka_partition ORDER BY 1, 2, 3"
                )
            ).all()
        ends_by_topic: dict[str, Mapping[int, int] | None] = {}
        for pipeline, topic, partition, next_offset, count in rows:
            labels = (pipeline, topic, str(partition))
            committed.add_metric(labels, float(next_offset or 0))
            covered.add_metric(labels, float(count or 0))
            if self.end_offsets is not None:
                if topic not in ends_by_topic:
                    ends_by_topic[topic] = self.end_offsets(topic)
                ends = ends_by_topic[topic]
                if ends is not None and partition in ends:
                    lag.add_metric(labels, float(max(0, ends[partition] - int(count or 0))))
        yield committed
        yield covered
        yield lag

    def _rejects(self) -> Iterator[Metric]:
        rejected = GaugeMetricFamily(
            "afluente_rows_rejected",
            "Rows kept aside with a reason, per rejects / dead-letter table",
            labels=("table",),
        )
        with self.connect() as conn:
            tables = conn.execute(
                _REJECT_TABLES_SQL, {"schema": "raw", "rejects": "%!_rejects", "dead": "%!_dead!_letter"}
            ).scalars()
            preparer = conn.dialect.identifier_preparer
            for table in list(tables):
                # The name comes from the catalog, quoted as an identifier: never request input.
                count = conn.execute(
                    sa.text(f"SELECT COUNT(*) FROM raw.{preparer.quote_identifier(table)}")
                ).scalar_one()
                rejected.add_metric((f"raw.{table}",), float(count))
        yield rejected


class BrokerEndOffsets:
    """End offsets per partition from Kafka, cached briefly; ``None`` when the broker does not answer."""

    def __init__(self, bootstrap_servers: str, ttl_s: float = 10.0, timeout_ms: int = 2000) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.ttl_s = ttl_s
        self.timeout_ms = timeout_ms
        self._cache: dict[str, tuple[float, Mapping[int, int] | None]] = {}

    def __call__(self, topic: str) -> Mapping[int, int] | None:
        cached = self._cache.get(topic)
        if cached and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        ends = self._fetch(topic)
        self._cache[topic] = (time.monotonic(), ends)
        return ends

    def _fetch(self, topic: str) -> Mapping[int, int] | None:
        from kafka import KafkaConsumer, TopicPartition

        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers.split(","),
                request_timeout_ms=self.timeout_ms + 1000,
                api_version_auto_timeout_ms=self.timeout_ms,
                connections_max_idle_ms=self.timeout_ms + 2000,
            )
        except Exception as exc:  # no broker: the lag gauge is left out, the others stay
            log.debug("kafka end offsets unavailable: %s", exc)
            return None
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()} if tps else {}
        except Exception as exc:
            log.debug("kafka end offsets of %s unavailable: %s", topic, exc)
            return None
        finally:
            consumer.close()


def install_metrics(
    connect: Callable[[], AbstractContextManager[sa.Connection]],
    engine: sa.Engine,
    kafka_bootstrap: str | None,
) -> ApiMetrics:
    """The app's metrics: HTTP families, query timing on ``engine``, pipeline gauges on scrape."""
    metrics = ApiMetrics()
    metrics.time_queries(engine)
    end_offsets = BrokerEndOffsets(kafka_bootstrap) if kafka_bootstrap else None
    metrics.registry.register(PipelineCollector(connect, end_offsets))
    return metrics
