"""Tell readers that a warehouse table changed: ``NOTIFY afluente_tables`` on PostgreSQL.

Sent inside the writing transaction, so PostgreSQL delivers it at commit (never for a rollback); the
read API's response cache listens on the channel. DuckDB readers watch the database file instead.
"""

from __future__ import annotations

import sqlalchemy as sa

CHANGE_CHANNEL = "afluente_tables"
_NOTIFY = sa.text("SELECT pg_notify(:channel, :table)")


def notify_changed(conn: sa.Connection, table: str) -> None:
    """Announce ``table`` (``schema.name``) as changed when ``conn``'s transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"channel": CHANGE_CHANNEL, "table": table})
