"""MongoDB-wire resource (FerretDB locally, MongoDB in docker-compose/production).

One ``MongoClient`` per resource instance: pymongo clients own a connection pool and monitor threads,
so creating one per call would leak sockets and slow every operation down.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database


class MongoResource(ConfigurableResource):
    """Connection to a MongoDB-compatible server and the database the pipelines use."""

    uri: str = Field(description="mongodb:// URI, e.g. mongodb://127.0.0.1:27017/")
    database: str = Field(description="Database the pipelines read and write")
    server_selection_timeout_ms: int = 10_000

    _client: MongoClient | None = PrivateAttr(default=None)

    def client(self) -> MongoClient:
        """The cached client for this resource instance (created on first use)."""
        if self._client is None:
            self._client = MongoClient(
                self.uri, serverSelectionTimeoutMS=self.server_selection_timeout_ms, tz_aware=True
            )
        return self._client

    def db(self) -> Database[dict[str, Any]]:
        return self.client()[self.database]

    def collection(self, name: str) -> Collection[dict[str, Any]]:
        return self.db()[name]

    def ping(self) -> bool:
        return self.client().admin.command("ping").get("ok") == 1

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Close the pool when a run/step is done with the resource."""
        self.close()
