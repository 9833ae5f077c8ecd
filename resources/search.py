"""Search resource: OpenSearch (local dev, default) or Elasticsearch (docker-compose), chosen by config.

What it does lives in the Dagster-free :class:`resources.search_client.SearchClient` (this resource
*is* one, configured from ``SEARCH_URL`` / ``SEARCH_ENGINE``); the read API uses that class directly.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from resources.search_client import ENGINES, Engine, SearchClient

__all__ = ["ENGINES", "Engine", "SearchClient", "SearchResource"]


class SearchResource(ConfigurableResource, SearchClient):
    """The :class:`SearchClient` as a Dagster resource; the client is closed after each execution."""

    url: str = Field(description="Base URL, e.g. http://127.0.0.1:9200")
    # A plain string (not a Literal) so it can come from ``EnvVar("SEARCH_ENGINE")``; checked on use.
    engine: str = Field(default="opensearch", description="Client flavour: 'opensearch' or 'elasticsearch'")
    username: str | None = Field(default=None, description="Basic-auth user (ELASTICSEARCH_USER)")
    password: str | None = Field(default=None, description="Basic-auth password (ELASTICSEARCH_PASSWORD)")
    verify_certs: bool = Field(default=True, description="Verify TLS certificates for https:// URLs")
    ca_certs: str | None = Field(default=None, description="CA bundle path for https:// URLs")
    request_timeout_s: float = 30.0

    _client: Any = PrivateAttr(default=None)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()
