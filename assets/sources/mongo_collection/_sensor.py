"""The watermark sensor of a MongoDB source: new and updated documents become bounded ingest runs.

A tick only peeks (an existence probe and the ``max_docs``-th change after the watermark, both index
scans on MongoDB, with a server time limit), never reads the documents: the run does, with the range
the tick planned as run config. The watermark itself is durable (advanced by the run in the same
transaction as the rows); the cursor only remembers what was last requested, to retry a range whose
run failed under a new run key. No request is made while a run of the same source is queued or
running, and none while MongoDB is unreachable (the tick skips with the reason).
"""

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure

from assets.sources.mongo_collection._keyset import BatchRange
from assets.sources.mongo_collection._planning import plan_batch, source_key_for
from assets.sources.mongo_collection._tables import TableName
from assets.sources.mongo_collection._watermark import read_watermark
from resources.mongo import MongoResource
from resources.run_status import IN_FLIGHT_STATUSES
from resources.warehouse import WarehouseResource

MONGO_SOURCE_TAG = "afluente/mongo_source"
DOMAIN_TAG = "afluente/domain"
MAX_SKIP_CHARS = 300


def next_attempt(cursor: dict[str, Any], token: str) -> int:
    """Attempt number of a range: it grows only while the same range keeps being requested."""
    if cursor.get("requested") == token:
        return int(cursor.get("attempt", 0)) + 1
    return 0


def run_request_for(
    batch: BatchRange, *, source_key: str, op_name: str, attempt: int, domain: str | None = None
) -> RunRequest:
    """The run of one batch: the range as op config, tagged with its source (and domain)."""
    tags = {MONGO_SOURCE_TAG: source_key}
    if domain:
        tags[DOMAIN_TAG] = domain
    tags["afluente/batch_attempt"] = str(attempt)
    return RunRequest(
        run_key=f"{source_key}|{batch.token()}|{attempt}",
        run_config={"ops": {op_name: {"config": batch.to_config()}}},
        tags=tags,
    )


def build_watermark_sensor(
    *,
    name: str,
    target: AssetSelection,
    op_name: str,
    domain: str,
    collection: Callable[[MongoResource], Collection[Any]],
    watermark_table: TableName,
    change_field: str,
    max_docs: Callable[[], int],
    lag_seconds: Callable[[], float],
    peek_timeout_ms: Callable[[], int],
    minimum_interval_seconds: int,
    description: str,
) -> SensorDefinition:
    """A sensor requesting one bounded batch of ``target`` whenever the collection changed."""

    @sensor(
        name=name,
        target=target,
        description=description,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _mongo_watermark_sensor(
        context: SensorEvaluationContext, mongo: MongoResource, warehouse: WarehouseResource
    ) -> SensorResult | SkipReason:
        source = collection(mongo)
        source_key = source_key_for(source)
        cursor = json.loads(context.cursor) if context.cursor else {}
        in_flight = context.instance.get_runs(
            filters=RunsFilter(tags={MONGO_SOURCE_TAG: source_key}, statuses=IN_FLIGHT_STATUSES), limit=1
        )
        if in_flight:
            return SkipReason(f"batch run {in_flight[0].run_id} of {source_key} is still in flight")
        watermark = read_watermark(warehouse, watermark_table, source_key)
        try:
            batch = plan_batch(
                source,
                watermark,
                now=dt.datetime.now(dt.UTC),
                lag_seconds=lag_seconds(),
                max_docs=max_docs(),
                peek_timeout_ms=peek_timeout_ms(),
                change_field=change_field,
            )
        except ConnectionFailure as exc:  # server selection timeout, reconnect, network timeout
            # Like the Kafka sensor with its broker down: nothing to request until it is back.
            return SkipReason(f"MongoDB unreachable for {source_key}: {str(exc)[:MAX_SKIP_CHARS]}")
        position = watermark.position.token() if watermark.position else "start"
        if batch is None:
            return SensorResult(
                skip_reason=SkipReason(f"no change in {source_key} after {position}"),
                cursor=json.dumps({**cursor, "watermark": position}),
            )
        token = batch.token()
        attempt = next_attempt(cursor, token)
        if attempt:
            context.log.warning(f"{source_key}: range {token} requested again (attempt {attempt})")
        context.log.info(f"{source_key}: requesting {token} (max {batch.max_docs} docs, exact={batch.exact})")
        request = run_request_for(
            batch, source_key=source_key, op_name=op_name, attempt=attempt, domain=domain
        )
        return SensorResult(
            run_requests=[request],
            cursor=json.dumps({"watermark": position, "requested": token, "attempt": attempt}),
        )

    return _mongo_watermark_sensor
