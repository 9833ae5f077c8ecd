"""``ops.incidents``: one row per failed step of a run, written once, read back, linked to its retry.

The storage half of self-healing (the decision lives in :mod:`sensors.reexecution`, the sensors in
:mod:`sensors.run_failure`). Rows are keyed by run id + step key hash, so a failure evaluated twice
is recorded once; every write is one transaction, every value a bound parameter.
"""

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from resources.bulk_write import quote_ident
from resources.error_diagnosis import MAX_MESSAGE_CHARS
from resources.platform_tables import PlatformTables, TableSpec, baseline, ensure_platform_tables
from resources.warehouse import WarehouseResource

INCIDENTS_SCHEMA = "ops"
INCIDENTS_TABLE = "incidents"
INCIDENT_COLUMNS = (
    "incident_id",
    "detected_at",
    "run_id",
    "job_name",
    "asset_keys",
    "step_key",
    "error_class",
    "error_message",
    "diagnosis",
    "explanation",
    "action",
    "attempt",
    "root_run_id",
    "retry_run_id",
)


@dataclass(frozen=True)
class Incident:
    """One row of ``ops.incidents``: one failed step of one run (``step_key`` None: the run itself)."""

    run_id: str
    job_name: str
    asset_keys: str
    step_key: str | None
    error_class: str
    error_message: str
    diagnosis: str
    explanation: str
    action: str
    attempt: int
    root_run_id: str
    retry_run_id: str | None = None
    detected_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))

    @property
    def incident_id(self) -> str:
        return incident_id_for(self.run_id, self.step_key)

    def row(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "detected_at": self.detected_at,
            "run_id": self.run_id,
            "job_name": self.job_name,
            "asset_keys": self.asset_keys,
            "step_key": self.step_key,
            "error_class": self.error_class,
            "error_message": self.error_message[:MAX_MESSAGE_CHARS],
            "diagnosis": self.diagnosis,
            "explanation": self.explanation,
            "action": self.action,
            "attempt": self.attempt,
            "root_run_id": self.root_run_id,
            "retry_run_id": self.retry_run_id,
        }


def incident_id_for(run_id: str, step_key: str | None) -> str:
    """Stable id: the same failed step of the same run always maps to the same row."""
    return f"{run_id}:{hashlib.sha256((step_key or '').encode()).hexdigest()[:16]}"


# Shape unchanged since self-healing introduced it (b59dea0, then in sensors/run_failure.py).
INCIDENTS_TABLES = PlatformTables(
    f"incidents/{INCIDENTS_SCHEMA}.{INCIDENTS_TABLE}",
    (
        TableSpec(
            INCIDENTS_SCHEMA,
            INCIDENTS_TABLE,
            (
                ("incident_id", "TEXT"),
                ("detected_at", "TIMESTAMP NOT NULL"),
                ("run_id", "TEXT NOT NULL"),
                ("job_name", "TEXT"),
                ("asset_keys", "TEXT"),
                ("step_key", "TEXT"),
                ("error_class", "TEXT"),
                ("error_message", "TEXT"),
                ("diagnosis", "TEXT NOT NULL"),
                ("explanation", "TEXT"),
                ("action", "TEXT NOT NULL"),
                ("attempt", "INTEGER NOT NULL"),
                ("root_run_id", "TEXT"),
                ("retry_run_id", "TEXT"),
            ),
            primary_key=("incident_id",),
        ),
    ),
    (baseline("ops.incidents as created since self-healing (b59dea0)"),),
)


def ensure_incidents_table(conn: sa.Connection) -> None:
    """Create ``ops.incidents`` if needed and apply its pending steps, in the caller's transaction."""
    ensure_platform_tables(conn, INCIDENTS_TABLES)


def record_incidents(warehouse: WarehouseResource, incidents: Sequence[Incident]) -> int:
    """Insert the incidents of one run in one transaction; already recorded ones are left as they are."""
    if not incidents:
        return 0
    with warehouse.begin() as conn:
        ensure_incidents_table(conn)
        table = quote_ident(conn, INCIDENTS_SCHEMA, INCIDENTS_TABLE)
        count = sa.text(f"SELECT COUNT(*) FROM {table} WHERE run_id IN :runs").bindparams(
            sa.bindparam("runs", expanding=True)
        )
        runs = {"runs": sorted({incident.run_id for incident in incidents})}
        before = conn.execute(count, runs).scalar() or 0
        columns = ", ".join(INCIDENT_COLUMNS)
        values = ", ".join(f":{name}" for name in INCIDENT_COLUMNS)
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (incident_id) DO NOTHING"
            ),
            [incident.row() for incident in incidents],
        )
        after = conn.execute(count, runs).scalar() or 0
    return int(after) - int(before)


def recorded_incidents(warehouse: WarehouseResource, run_id: str) -> list[dict[str, Any]]:
    """The incidents already recorded for a run (empty when the table does not exist yet)."""
    if not warehouse.table_exists(INCIDENTS_SCHEMA, INCIDENTS_TABLE):
        return []
    with warehouse.connect() as conn:
        table = quote_ident(conn, INCIDENTS_SCHEMA, INCIDENTS_TABLE)
        result = conn.execute(
            sa.text(f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM {table} WHERE run_id = :run_id"),
            {"run_id": run_id},
        )
        return [dict(row._mapping) for row in result]


def link_retry_run(warehouse: WarehouseResource, parent_run_id: str, retry_run_id: str) -> int:
    """Fill ``retry_run_id`` of a run's re-executed incidents once the daemon launched the retry."""
    if not warehouse.table_exists(INCIDENTS_SCHEMA, INCIDENTS_TABLE):
        return 0
    with warehouse.begin() as conn:
        table = quote_ident(conn, INCIDENTS_SCHEMA, INCIDENTS_TABLE)
        result = conn.execute(
            sa.text(
                f"UPDATE {table} SET retry_run_id = :retry WHERE run_id = :parent "
                "AND action = 'reexecuted' AND retry_run_id IS NULL"
            ),
            {"retry": retry_run_id, "parent": parent_run_id},
        )
        return int(result.rowcount or 0)


__all__ = [
    "INCIDENTS_SCHEMA",
    "INCIDENTS_TABLE",
    "INCIDENT_COLUMNS",
    "Incident",
    "ensure_incidents_table",
    "incident_id_for",
    "link_retry_run",
    "record_incidents",
    "recorded_incidents",
]
