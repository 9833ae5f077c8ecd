"""The search side of the monitor: the index template, bulk writes with per-document outcomes, retention.

Documents go to ``<alias>-YYYY.MM.DD`` indices created on their first write from a composable
index template that also attaches the alias, so readers query ``<alias>`` and never see which days
exist. A bulk request that cannot be sent (connection refused, timeout, 5xx) makes every document
of the pass "not indexed" (the caller spools them); inside a reply, a document refused with 429 or
5xx is retried later the same way, one refused with another 4xx is rejected for good (kept with
its reason by the caller).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from assets.monitor._documents import INDEX_SETTINGS, MAPPINGS, index_day
from resources.search import SearchResource
from resources.search_bulk import ndjson_chunks

Spooled = tuple[str, dict[str, Any]]  # (index, document)
_REPLY = "errors,items.*._id,items.*.status,items.*.error.type,items.*.error.reason"


class EngineUnavailableError(RuntimeError):
    """The search engine did not answer a bulk request; nothing of that request is known indexed."""


@dataclass
class BulkOutcome:
    """Per-document result of :func:`write_documents`."""

    indexed: int = 0
    retry: list[Spooled] = field(default_factory=list)
    rejected: list[tuple[str, Spooled]] = field(default_factory=list)  # (reason, document)


def ensure_template(search: SearchResource, alias: str) -> None:
    """The composable template giving every new ``<alias>-*`` index its mappings, settings and the
    alias, applied when a bulk write creates the index (idempotent: a PUT replaces it)."""
    body = {
        "index_patterns": [f"{alias}-*"],
        "template": {"settings": INDEX_SETTINGS, "mappings": MAPPINGS, "aliases": {alias: {}}},
        "priority": 100,
    }
    if search.engine == "opensearch":
        search.client().indices.put_index_template(name=alias, body=body)
    else:
        search.client().indices.put_index_template(name=alias, **body)


def write_documents(
    search: SearchResource, documents: Iterable[Spooled], chunk_docs: int = 2000
) -> BulkOutcome:
    """Index documents (``_id`` = ``doc_id``) into their daily index; raise EngineUnavailableError when
    the engine does not answer (the outcome of what was already answered is lost with it: the caller
    keeps every document, the ids make re-sending harmless)."""
    by_index: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index, doc in documents:
        by_index[index].append(doc)
    outcome = BulkOutcome()
    for index, docs in sorted(by_index.items()):
        by_id = {doc["doc_id"]: doc for doc in docs}
        for chunk in ndjson_chunks(index, docs, "doc_id", chunk_docs=chunk_docs):
            try:
                reply = search.bulk_ndjson(chunk.body, reply_filter=_REPLY)
            except Exception as exc:  # noqa: BLE001 - any failure to get an answer means "not indexed"
                raise EngineUnavailableError(
                    f"search engine unavailable: {type(exc).__name__}: {exc}"
                ) from exc
            if not reply.get("errors"):
                outcome.indexed += chunk.documents
                continue
            failed = 0
            for item in reply.get("items") or []:
                result: dict[str, Any] = next(iter(item.values()), {})
                status = int(result.get("status") or 0)
                if status < 300:
                    continue
                failed += 1
                refused = by_id.get(str(result.get("_id")))
                if refused is None:
                    continue
                if status == 429 or status >= 500:
                    outcome.retry.append((index, refused))
                else:
                    error = result.get("error") or {}
                    outcome.rejected.append(
                        (f"{status} {error.get('type')}: {error.get('reason')}", (index, refused))
                    )
            outcome.indexed += chunk.documents - failed
    return outcome


def apply_retention(search: SearchResource, alias: str, days: int, today: dt.date | None = None) -> list[str]:
    """Delete the daily indices of ``alias`` older than ``days`` days; return their names."""
    if days <= 0:
        return []
    cutoff = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=days)
    doomed = []
    for name in search.list_indices(f"{alias}-*"):
        day = index_day(alias, name)
        if day is not None and day < cutoff:
            doomed.append(name)
    for name in doomed:
        search.delete_index(name, missing_ok=True)
    return doomed
