"""The search client without Dagster: OpenSearch (default) or Elasticsearch, chosen by configuration.

The engine is an attribute, read when a client is built, never an import-time switch, so the same code
runs against either server. The helpers are engine-neutral; they grow into versioned indices with an
atomic alias switch (``put_alias_atomically``) so readers never see a half-built index. Pipelines use
it through :class:`resources.search.SearchResource` (the Dagster resource is a ``SearchClient``); the
read API uses it directly, so serving answers never imports Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from resources.search_bulk import bulk_index

Engine = Literal["opensearch", "elasticsearch"]
ENGINES: tuple[str, ...] = ("opensearch", "elasticsearch")


def _body(response: Any) -> dict[str, Any]:
    """elasticsearch-py returns ObjectApiResponse, opensearch-py a dict: give callers a plain dict."""
    body = getattr(response, "body", response)
    return dict(body) if isinstance(body, Mapping) else body


class SearchClient:
    """Connection to an OpenSearch or Elasticsearch cluster plus small engine-neutral index helpers."""

    def __init__(
        self,
        url: str,
        engine: str = "opensearch",
        username: str | None = None,
        password: str | None = None,
        verify_certs: bool = True,
        ca_certs: str | None = None,
        request_timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.engine = engine
        self.username = username
        self.password = password
        self.verify_certs = verify_certs
        self.ca_certs = ca_certs
        self.request_timeout_s = request_timeout_s
        self._client: Any = None

    # ----- client
    def client(self) -> Any:
        """An ``opensearchpy.OpenSearch`` or ``elasticsearch.Elasticsearch``, cached per resource instance."""
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        auth = (self.username, self.password or "") if self.username else None
        https = self.url.lower().startswith("https://")
        if self.engine == "opensearch":
            from opensearchpy import OpenSearch

            kwargs: dict[str, Any] = {"timeout": self.request_timeout_s}
            if auth:
                kwargs["http_auth"] = auth
            if https:
                kwargs.update(use_ssl=True, verify_certs=self.verify_certs, ssl_show_warn=self.verify_certs)
                if self.ca_certs:
                    kwargs["ca_certs"] = self.ca_certs
            return OpenSearch([self.url], **kwargs)
        if self.engine == "elasticsearch":
            from elasticsearch import Elasticsearch

            kwargs = {"request_timeout": self.request_timeout_s}
            if auth:
                kwargs["basic_auth"] = auth
            if https:
                kwargs.update(verify_certs=self.verify_certs)
                if self.ca_certs:
                    kwargs["ca_certs"] = self.ca_certs
            return Elasticsearch(self.url, **kwargs)
        raise ValueError(f"unknown search engine {self.engine!r}: SEARCH_ENGINE must be one of {ENGINES}")

    def _not_found(self) -> type[Exception]:
        if self.engine == "opensearch":
            from opensearchpy import NotFoundError as OpenSearchNotFound

            return OpenSearchNotFound
        from elasticsearch import NotFoundError as ElasticsearchNotFound

        return ElasticsearchNotFound

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ----- cluster / indices
    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001 - ping answers "reachable?", never raises
            return False

    def index_exists(self, name: str) -> bool:
        return bool(self.client().indices.exists(index=name))

    def create_index(
        self,
        name: str,
        mappings: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        aliases: Mapping[str, Any] | None = None,
        exist_ok: bool = True,
    ) -> bool:
        """Create ``name``; True if created, False if it existed and ``exist_ok``."""
        if exist_ok and self.index_exists(name):
            return False
        parts = {"mappings": mappings, "settings": settings, "aliases": aliases}
        parts = {k: dict(v) for k, v in parts.items() if v}
        if self.engine == "opensearch":
            self.client().indices.create(index=name, body=parts)
        else:
            self.client().indices.create(index=name, **parts)
        return True

    def delete_index(self, name: str, missing_ok: bool = True) -> bool:
        """Delete one index (or a comma list); True if deleted, False if missing and ``missing_ok``."""
        try:
            self.client().indices.delete(index=name)
            return True
        except self._not_found():
            if missing_ok:
                return False
            raise

    def list_indices(self, pattern: str = "*") -> list[str]:
        """Concrete index names matching ``pattern`` (wildcards allowed), sorted."""
        try:
            return sorted(_body(self.client().indices.get(index=pattern)))
        except self._not_found():
            return []

    def refresh(self, index: str) -> None:
        """Make everything indexed so far searchable (tests, one-shot loads; pipelines avoid it)."""
        self.client().indices.refresh(index=index)

    # ----- documents
    def bulk_ndjson(self, body: bytes, reply_filter: str = "errors,items.*.error") -> dict[str, Any]:
        """Send one prebuilt NDJSON ``_bulk`` body; the reply lists only the failed items.

        ``{"errors": false}`` when every document was indexed, else ``items`` holds one
        ``{"<op>": {"error": ...}}`` per refused document (the engine filters the rest out).
        ``reply_filter`` (a ``filter_path``) asks for more, e.g. every item's ``status``.
        """
        if self.engine == "opensearch":
            return _body(self.client().bulk(body=body, filter_path=reply_filter))
        return _body(self.client().bulk(operations=body, filter_path=reply_filter))

    def bulk_index(
        self,
        index: str,
        docs: Iterable[Mapping[str, Any]],
        id_field: str | None = None,
        refresh: bool = False,
        chunk_size: int = 1000,
    ) -> int:
        """Index ``docs`` (``_id`` from ``id_field`` when given); ``refresh`` makes them searchable now.

        Returns the number of documents indexed; raises ``BulkRejectedError`` if any was refused.
        """
        indexed = bulk_index(self, index, docs, id_field=id_field, chunk_docs=chunk_size, threads=1)
        if refresh:
            self.refresh(index)
        return indexed

    def search(
        self, index: str, query: Mapping[str, Any] | None = None, size: int = 10, **body: Any
    ) -> dict[str, Any]:
        """Run a query-DSL ``query`` (default match_all); extra body keys (sort, aggs, ...) via kwargs."""
        request = {"query": dict(query or {"match_all": {}}), "size": size, **body}
        if self.engine == "opensearch":
            return _body(self.client().search(index=index, body=request))
        return _body(self.client().search(index=index, **request))

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        request = {"query": dict(query or {"match_all": {}})}
        if self.engine == "opensearch":
            return int(_body(self.client().count(index=index, body=request))["count"])
        return int(_body(self.client().count(index=index, **request))["count"])

    # ----- aliases (for versioned indices)
    def alias_indices(self, alias: str) -> list[str]:
        """Indices the alias points to now (empty when the alias does not exist)."""
        try:
            return sorted(_body(self.client().indices.get_alias(name=alias)))
        except self._not_found():
            return []

    def update_aliases(self, actions: list[dict[str, Any]]) -> None:
        """Apply ``_aliases`` actions in ONE request: the cluster applies them atomically."""
        if self.engine == "opensearch":
            self.client().indices.update_aliases(body={"actions": actions})
        else:
            self.client().indices.update_aliases(actions=actions)

    def put_alias_atomically(self, alias: str, new_index: str) -> list[str]:
        """Point ``alias`` at ``new_index`` only, in one atomic ``_aliases`` call; return the old indices.

        Readers querying the alias see either the old index or the new one, never none or both.
        """
        old = [name for name in self.alias_indices(alias) if name != new_index]
        actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": alias}} for name in old]
        actions.append({"add": {"index": new_index, "alias": alias}})
        self.update_aliases(actions)
        return old
