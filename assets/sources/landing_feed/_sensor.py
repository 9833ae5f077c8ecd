"""The file-drop sensor of a declared feed: each new file in its folder becomes a dynamic partition and a run.

Files are identified by content (SHA-256), so a re-dropped identical file is a no-op (it is set
aside in ``_duplicates/``). The sensor only lists, hashes and compares: it never parses a file or
touches the warehouse, so a tick stays short however big the files are. Entries that are not
regular files inside the landing root (symlinks, hard links, FIFOs, devices) are moved to
``_quarantine/`` unread; files still being written (no final newline, no marker when the feed
uses markers) wait, and the skip reason says which and why.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.sources.landing_feed.contract import LANDING_FILE_TAG
from resources.landing_zone import (
    DIGEST_CHARS,
    LandingZoneResource,
    RefusedEntryError,
    digest_of_key,
    file_digest,
    partition_key_for,
)
from resources.settings import LandingSettings


@dataclass(frozen=True)
class FileDropPlan:
    """What one tick decided: partitions to add and run, duplicates to set aside, the next cursor."""

    new_keys: list[str]
    paths: dict[str, Path]
    duplicates: list[tuple[Path, str]]
    cursor: dict


def plan_file_drops(
    candidates: list[tuple[Path, int, int]],
    existing_keys: set[str],
    cursor: dict,
    is_archived: Callable[[str, str], bool],
    max_files: int,
) -> FileDropPlan:
    """Pure decision logic of a tick (unit-tested without Dagster).

    ``cursor`` caches digests by (path, size, mtime) so unchanged files are not hashed again, and
    remembers which path each requested digest came from, to tell a pending file from a duplicate.
    """
    cached: dict[str, list] = cursor.get("files", {})
    requested: dict[str, str] = dict(cursor.get("requested", {}))
    known = {digest_of_key(key): key for key in existing_keys}
    files: dict[str, list] = {}
    new_keys: list[str] = []
    paths: dict[str, Path] = {}
    duplicates: list[tuple[Path, str]] = []
    for path, size, mtime_ns in candidates:
        entry = cached.get(str(path))
        try:
            if entry is not None and entry[0] == size and entry[1] == mtime_ns:
                digest = entry[2]
            else:
                digest = file_digest(path)
        except (RefusedEntryError, FileNotFoundError):
            continue  # replaced or removed since the scan: the next tick sees what it became
        short = digest[:DIGEST_CHARS]
        key = partition_key_for(path.name, digest)
        original = known.get(short)
        if original is not None:
            pending_original = requested.get(short) == str(path) and not is_archived(digest, path.name)
            if not pending_original:
                duplicates.append((path, original))
                continue
            files[str(path)] = [size, mtime_ns, digest]
            continue
        if len(new_keys) >= max_files:
            files[str(path)] = [size, mtime_ns, digest]
            continue
        new_keys.append(key)
        known[short] = key
        paths[key] = path
        requested[short] = str(path)
        files[str(path)] = [size, mtime_ns, digest]
    # Forget requests whose file has left the folder (archived or quarantined by its run).
    requested = {digest: where for digest, where in requested.items() if Path(where).exists()}
    return FileDropPlan(new_keys, paths, duplicates, {"files": files, "requested": requested})


def marker_feeds() -> set[str]:
    """Feeds whose files wait for a completion marker (``AFLUENTE_LANDING_MARKER_FEEDS``)."""
    value = LandingSettings.current().marker_feeds
    return {feed.strip() for feed in value.split(",") if feed.strip() and feed.strip() != "none"}


def _waiting_summary(waiting: list[tuple[Path, str]], limit: int = 5) -> str:
    shown = "; ".join(f"{path.name}: {reason}" for path, reason in waiting[:limit])
    more = f" (and {len(waiting) - limit} more)" if len(waiting) > limit else ""
    return f"{len(waiting)} file(s) still being written: {shown}{more}"


def build_file_drop_sensor(
    *,
    name: str,
    domain: str,
    folder: str,
    patterns: tuple[str, ...],
    partitions_def: DynamicPartitionsDefinition,
    target: AssetSelection,
    description: str,
) -> SensorDefinition:
    """A sensor turning new files of ``<landing root>/<folder>/`` into partitions of ``target``.

    ``domain`` names the feed: its run tag, and whether it waits for markers
    (``AFLUENTE_LANDING_MARKER_FEEDS``).
    """
    partitions_name = partitions_def.name
    if partitions_name is None:
        raise ValueError(f"{name}: the dynamic partitions of a file feed need a name")

    @sensor(
        name=name,
        target=target,
        description=description,
        minimum_interval_seconds=LandingSettings.current().sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _file_drop_sensor(
        context: SensorEvaluationContext, landing_zone: LandingZoneResource
    ) -> SensorResult | SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {}
        settings = LandingSettings.current()
        scan = landing_zone.scan(
            folder,
            patterns,
            settings.settle_seconds,
            settings.unterminated_seconds,
            require_marker=domain in marker_feeds(),
        )
        for path, reason in scan.refused:
            try:
                moved = landing_zone.refuse(folder, path, reason)
            except FileNotFoundError:
                continue
            context.log.warning(f"{path.name} {reason}; moved to {moved} without being read")
        candidates = scan.ready
        existing = set(context.instance.get_dynamic_partitions(partitions_name))
        plan = plan_file_drops(
            candidates,
            existing,
            cursor,
            lambda digest, file_name: landing_zone.is_archived(folder, digest, file_name),
            settings.max_files_per_tick,
        )
        for path, original in plan.duplicates:
            moved = landing_zone.set_aside_duplicate(folder, path, original)
            context.log.info(f"{path.name}: same content as partition {original}; moved to {moved}")
        if not plan.new_keys:
            waiting = f"; {_waiting_summary(scan.waiting)}" if scan.waiting else ""
            return SensorResult(
                skip_reason=SkipReason(f"no new files in {landing_zone.domain_dir(folder)}{waiting}"),
                cursor=json.dumps(plan.cursor),
            )
        return SensorResult(
            run_requests=[
                RunRequest(
                    partition_key=key,
                    run_key=key,
                    tags={LANDING_FILE_TAG: str(plan.paths[key]), "afluente/domain": domain},
                )
                for key in plan.new_keys
            ],
            dynamic_partitions_requests=[partitions_def.build_add_request(plan.new_keys)],
            cursor=json.dumps(plan.cursor),
        )

    return _file_drop_sensor
