"""Versioned search indices behind an alias, rebuilt without readers ever seeing a partial index.

A build creates ``<alias>_v<UTC timestamp>`` with explicit mappings (``dynamic: strict``, refresh off,
no replicas while loading), streams the documents in as concurrent NDJSON bulk requests,
restores the refresh interval, refreshes, verifies the document count, then moves the alias in ONE
``_aliases`` request (remove the alias from every ``<alias>_v*`` index + add it to the new one), which
the cluster applies atomically. Old versions beyond ``keep`` are pruned afterwards. Any failure before
the switch deletes the half-built index and leaves the previous version serving.

Works with OpenSearch and Elasticsearch clients through :class:`resources.search_client.SearchClient`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resources.search_bulk import BulkRejectedError, bulk_index
from resources.search_client import SearchClient

_VERSION_RE = r"_v\d{8}t\d{12}$"


class IndexBuildError(RuntimeError):
    """A versioned build did not complete; the previous version (if any) still serves the alias."""


@dataclass(frozen=True)
class IndexDefinition:
    """What an alias serves: explicit mappings, index settings, and the field giving each ``_id``."""

    alias: str
    mappings: Mapping[str, Any]
    settings: Mapping[str, Any] = field(default_factory=dict)
    id_field: str | None = None


@dataclass(frozen=True)
class IndexBuild:
    """Outcome of one build."""

    alias: str
    index: str
    documents: int
    previous: tuple[str, ...]
    pruned: tuple[str, ...]
    bulk_seconds: float
    total_seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.bulk_seconds if self.bulk_seconds > 0 else 0.0

    def metadata(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "index": self.index,
            "documents": self.documents,
            "previous_indices": ", ".join(self.previous) or "-",
            "pruned_indices": ", ".join(self.pruned) or "-",
            "bulk_seconds": round(self.bulk_seconds, 3),
            "bulk_docs_per_second": round(self.docs_per_second, 1),
            "total_seconds": round(self.total_seconds, 3),
        }


def version_name(alias: str, at: dt.datetime | None = None) -> str:
    """``<alias>_v<YYYYMMDD>t<HHMMSSffffff>`` (lowercase, sortable by build time)."""
    at = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{alias}_v{at:%Y%m%d}t{at:%H%M%S%f}"


def is_version_of(alias: str, index: str) -> bool:
    return re.fullmatch(re.escape(alias) + _VERSION_RE, index) is not None


def versions_of(search: SearchClient, alias: str) -> list[str]:
    """Every built version of ``alias``, oldest first."""
    return sorted(name for name in search.list_indices(f"{alias}_v*") if is_version_of(alias, name))


def alias_switch_actions(
    alias: str, new_index: str, *, replace_concrete: bool = False
) -> list[dict[str, Any]]:
    """The ``_aliases`` actions of a switch: detach the alias from every version, attach it to the new one.

    The wildcard remove also covers a version a concurrent build attached meanwhile, so the alias ends
    up on exactly one index. ``replace_concrete`` deletes a plain index that squats the alias name.
    """
    actions: list[dict[str, Any]] = [
        {"remove": {"index": f"{alias}_v*", "alias": alias, "must_exist": False}},
    ]
    if replace_concrete:
        actions.append({"remove_index": {"index": alias}})
    actions.append({"add": {"index": new_index, "alias": alias}})
    return actions


def _put_settings(search: SearchClient, index: str, settings: Mapping[str, Any]) -> None:
    client = search.client()
    if search.engine == "opensearch":
        client.indices.put_settings(index=index, body={"index": dict(settings)})
    else:
        client.indices.put_settings(index=index, settings={"index": dict(settings)})


def switch_alias(search: SearchClient, alias: str, new_index: str) -> list[str]:
    """Point ``alias`` at ``new_index`` only, in one atomic ``_aliases`` request; return the old targets."""
    previous = [name for name in search.alias_indices(alias) if name != new_index]
    concrete = not previous and search.index_exists(alias) and not search.alias_indices(alias)
    search.update_aliases(alias_switch_actions(alias, new_index, replace_concrete=concrete))
    return previous


def prune_versions(search: SearchClient, alias: str, keep: int) -> list[str]:
    """Delete the oldest versions beyond ``keep`` (never the one the alias points at)."""
    serving = set(search.alias_indices(alias))
    versions = versions_of(search, alias)
    doomed = [name for name in versions[: max(0, len(versions) - max(1, keep))] if name not in serving]
    for name in doomed:
        search.delete_index(name, missing_ok=True)
    return doomed


def _discard(search: SearchClient, alias: str, name: str, log: Any) -> None:
    """Delete a failed build, unless the alias switch went through after all (a lost response)."""
    try:
        if name in search.alias_indices(alias):
            return
    except Exception:  # noqa: BLE001 - cannot tell: deleting the unswitched build is the safe default
        pass
    search.delete_index(name, missing_ok=True)
    if log is not None:
        log.error(f"build of {name} failed; deleted it, {alias} still serves the previous version")


def build_versioned_index(
    search: SearchClient,
    definition: IndexDefinition,
    docs: Iterable[Mapping[str, Any]],
    *,
    keep: int = 2,
    chunk_size: int = 2000,
    thread_count: int = 2,
    now: dt.datetime | None = None,
    log: Any = None,
) -> IndexBuild:
    """Build a new version of ``definition.alias`` from ``docs`` and switch the alias to it (see module)."""
    started = time.perf_counter()
    alias = definition.alias
    name = version_name(alias, now)
    serving_settings = dict(definition.settings)
    build_settings = {**serving_settings, "refresh_interval": "-1", "number_of_replicas": 0}
    search.create_index(name, mappings=definition.mappings, settings=build_settings, exist_ok=False)
    try:
        bulk_started = time.perf_counter()
        try:
            indexed = bulk_index(
                search, name, docs, id_field=definition.id_field, chunk_docs=chunk_size, threads=thread_count
            )
        except BulkRejectedError as exc:
            raise IndexBuildError(str(exc)) from exc
        bulk_seconds = time.perf_counter() - bulk_started
        _put_settings(
            search,
            name,
            {
                "refresh_interval": serving_settings.get("refresh_interval", "1s"),
                "number_of_replicas": serving_settings.get("number_of_replicas", 0),
            },
        )
        search.refresh(name)
        counted = search.count(name)
        if counted != indexed:
            raise IndexBuildError(f"{name}: {indexed} documents sent but {counted} searchable")
        previous = switch_alias(search, alias, name)
    except BaseException:
        _discard(search, alias, name, log)
        raise
    pruned = prune_versions(search, alias, keep)
    build = IndexBuild(
        alias=alias,
        index=name,
        documents=indexed,
        previous=tuple(previous),
        pruned=tuple(pruned),
        bulk_seconds=bulk_seconds,
        total_seconds=time.perf_counter() - started,
    )
    if log is not None:
        log.info(f"{alias} -> {name}: {indexed} documents ({build.docs_per_second:.0f} docs/s bulk)")
    return build
