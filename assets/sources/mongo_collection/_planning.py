"""Planning a batch (sensor tick and manual runs): peeks only, never the documents.

On MongoDB every query here is an index range scan over ``(change field, _id)``. FerretDB 1.24 (the
local service) pushes only top-level equality filters down to PostgreSQL: the range filters, the
``$or`` sweep, the keyset sort and a limit combined with a filter run in Go after it read and decoded
the whole collection. There the peek's ``sort + skip + limit`` sorts the whole range in memory (the
peek time limit bounds it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.errors import ExecutionTimeout

from assets.sources.mongo_collection._keyset import (
    BatchRange,
    Position,
    Watermark,
    encode_id,
    floor_ms,
    keyset_sort,
)


def source_key_for(collection: Collection[Any]) -> str:
    """Watermark key of a collection: one watermark per ``database.collection``."""
    return f"mongodb:{collection.database.name}.{collection.name}"


def change_index_name(change_field: str) -> str:
    return f"{change_field}_1__id_1"


def ensure_change_index(collection: Collection[Any], change_field: str) -> None:
    """The ``(change field, _id)`` index that makes the peek and the range reads index scans."""
    collection.create_index(keyset_sort(change_field), name=change_index_name(change_field))


def plan_batch(
    collection: Collection[Any],
    watermark: Watermark,
    *,
    now: dt.datetime,
    lag_seconds: float,
    max_docs: int,
    peek_timeout_ms: int,
    change_field: str,
) -> BatchRange | None:
    """The next bounded batch after ``watermark``, or None when nothing changed.

    Costs two small queries on an indexed collection: an existence probe and the keyset edge (the
    ``max_docs``-th change, read from the index). Only changes older than ``lag_seconds`` are planned,
    so a writer that commits slightly late with an older change time is not skipped. If the edge
    query exceeds ``peek_timeout_ms`` the batch is planned open-ended and the run reads ``max_docs``
    in order instead.
    """
    if max_docs < 1:
        raise ValueError("max_docs must be >= 1")
    horizon = floor_ms(now - dt.timedelta(seconds=lag_seconds))
    lower = watermark.position
    if lower is not None and lower.updated_at >= horizon:
        horizon = lower.updated_at
    open_range = BatchRange(
        lower=lower,
        upper=Position(horizon),
        sweep_from=watermark.sweep_id,
        sweep_until=max(
            ObjectId.from_datetime(horizon.replace(tzinfo=dt.UTC)), watermark.sweep_id or ObjectId("0" * 24)
        ),
        max_docs=max_docs,
        change_field=change_field,
    )
    try:
        probe = collection.find(open_range.combined_filter(), {"_id": 1}, max_time_ms=peek_timeout_ms)
        if next(iter(probe.limit(1)), None) is None:
            return None
        edge_cursor = (
            collection.find(open_range.key_filter(), {change_field: 1}, max_time_ms=peek_timeout_ms)
            .sort(keyset_sort(change_field))
            .skip(max_docs - 1)
            .limit(1)
        )
        edge = next(iter(edge_cursor), None)
    except ExecutionTimeout:
        return replace(open_range, exact=False)
    if edge is None:
        return open_range
    upper = Position(floor_ms(edge[change_field]), encode_id(edge["_id"]))
    sweep_until = ObjectId.from_datetime(upper.updated_at.replace(tzinfo=dt.UTC))
    return replace(
        open_range, upper=upper, sweep_until=max(sweep_until, open_range.sweep_from or sweep_until)
    )
