"""Positions and batch ranges in ``(change field, _id)`` order, and their MongoDB filters.

Change tracking follows a keyset over ``(<change field>, _id)``: writers set the change field (a BSON
date, ``updated_at`` by convention) on every insert and update, so each *version* of a document passes
the watermark exactly once. A batch is a range ``(lower, upper]`` plus an ObjectId window
``[sweep_from, sweep_until)``: documents created in the window whose change field is missing, not a
date, or older than the watermark never enter the keyset range and are read by that *sweep*.
Pure logic: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

DEFAULT_CHANGE_FIELD = "updated_at"


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """Warehouse timestamps are naive UTC; aware values are converted, naive ones taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def floor_ms(value: dt.datetime) -> dt.datetime:
    """BSON dates have millisecond precision: positions are kept at that precision (naive UTC)."""
    value = to_utc_naive(value)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def encode_id(value: Any) -> str:
    """A document id as canonical extended JSON: its BSON type survives the round trip."""
    return json_util.dumps({"v": value}, json_options=CANONICAL_JSON_OPTIONS)


def decode_id(text: str) -> Any:
    return json_util.loads(text)["v"]


def keyset_sort(change_field: str) -> list[tuple[str, int]]:
    """The sort (and index) of the keyset: change field, then ``_id``."""
    return [(change_field, 1), ("_id", 1)]


@dataclass(frozen=True, order=True)
class Position:
    """A point in ``(change field, _id)`` order; ``doc_id`` None means after every document at that time."""

    updated_at: dt.datetime
    doc_id: str | None = None

    def after_filter(self, change_field: str = DEFAULT_CHANGE_FIELD) -> dict[str, Any]:
        """Documents strictly after this position."""
        if self.doc_id is None:
            return {change_field: {"$gt": self.updated_at}}
        return {
            "$or": [
                {change_field: {"$gt": self.updated_at}},
                {change_field: self.updated_at, "_id": {"$gt": decode_id(self.doc_id)}},
            ]
        }

    def upto_filter(self, change_field: str = DEFAULT_CHANGE_FIELD) -> dict[str, Any]:
        """Documents at or before this position (dates only: BSON comparisons are type-bracketed)."""
        if self.doc_id is None:
            return {change_field: {"$lte": self.updated_at}}
        return {
            "$or": [
                {change_field: {"$lt": self.updated_at}},
                {change_field: self.updated_at, "_id": {"$lte": decode_id(self.doc_id)}},
            ]
        }

    def token(self) -> str:
        return f"{self.updated_at.isoformat(timespec='milliseconds')}/{self.doc_id or '*'}"


@dataclass(frozen=True)
class Watermark:
    """What has been consumed from one collection, as stored in the watermark table."""

    source_key: str
    position: Position | None = None  # None: nothing consumed yet
    sweep_id: ObjectId | None = None  # inclusive lower bound of the next ObjectId sweep


@dataclass(frozen=True)
class BatchRange:
    """One bounded batch: keyset range ``(lower, upper]`` plus ObjectId window ``[sweep_from, sweep_until)``.

    ``exact`` batches were sized by a peek and are read unsorted (streamed); otherwise the run reads
    ``max_docs`` changes in keyset order and stops there. ``change_field`` is the declaration's, not
    part of the run config.
    """

    lower: Position | None
    upper: Position
    sweep_from: ObjectId | None
    sweep_until: ObjectId
    max_docs: int
    exact: bool = True
    change_field: str = DEFAULT_CHANGE_FIELD

    def key_filter(self) -> dict[str, Any]:
        parts = [self.upper.upto_filter(self.change_field)]
        if self.lower is not None:
            parts.insert(0, self.lower.after_filter(self.change_field))
        return {"$and": parts}

    def sweep_filter(self) -> dict[str, Any]:
        id_range: dict[str, Any] = {"$lt": self.sweep_until}
        if self.sweep_from is not None:
            id_range["$gte"] = self.sweep_from
        unseen: list[dict[str, Any]] = [{self.change_field: {"$not": {"$type": "date"}}}]
        if self.lower is not None:
            # Backdated: older than the second the window starts in (the keyset consumed the rest).
            unseen.append({self.change_field: {"$lt": self.lower.updated_at.replace(microsecond=0)}})
        return {"_id": id_range, "$or": unseen}

    def combined_filter(self) -> dict[str, Any]:
        return {"$or": [self.key_filter(), self.sweep_filter()]}

    def to_config(self) -> dict[str, Any]:
        """Run-config values (plain strings) of the ingest asset's batch config."""
        return {
            "lower_updated_at": self.lower.updated_at.isoformat() if self.lower else None,
            "lower_id": self.lower.doc_id if self.lower else None,
            "upper_updated_at": self.upper.updated_at.isoformat(),
            "upper_id": self.upper.doc_id,
            "sweep_from": str(self.sweep_from) if self.sweep_from else None,
            "sweep_until": str(self.sweep_until),
            "max_docs": self.max_docs,
            "exact": self.exact,
        }

    @classmethod
    def from_config(
        cls, values: Mapping[str, Any], change_field: str = DEFAULT_CHANGE_FIELD
    ) -> BatchRange | None:
        """The range a run was asked for, or None when the run config names none (manual runs)."""
        if not values.get("upper_updated_at") or not values.get("sweep_until"):
            return None
        lower = None
        if values.get("lower_updated_at"):
            lower = Position(dt.datetime.fromisoformat(values["lower_updated_at"]), values.get("lower_id"))
        return cls(
            lower=lower,
            upper=Position(dt.datetime.fromisoformat(values["upper_updated_at"]), values.get("upper_id")),
            sweep_from=ObjectId(values["sweep_from"]) if values.get("sweep_from") else None,
            sweep_until=ObjectId(values["sweep_until"]),
            max_docs=int(values["max_docs"]),
            exact=bool(values.get("exact", True)),
            change_field=change_field,
        )

    def token(self) -> str:
        lower = self.lower.token() if self.lower else "start"
        return f"{lower}..{self.upper.token()}"
