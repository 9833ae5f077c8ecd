"""One list of in-flight run statuses for the whole platform (resources/run_status.py)."""

import re
from pathlib import Path

from dagster import DagsterRunStatus

from assets.sources.kafka_topic import _sensor as kafka_offsets
from assets.sources.mongo_collection import _sensor as mongo_watermark
from resources.run_status import IN_FLIGHT_STATUSES
from sensors import reexecution

ROOT = Path(__file__).resolve().parents[2]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def test_in_flight_is_every_unfinished_status_of_a_run_launched_here() -> None:
    # A status Dagster adds later fails this test, forcing a decision about it.
    assert set(IN_FLIGHT_STATUSES) == set(DagsterRunStatus) - FINISHED - {DagsterRunStatus.MANAGED}
    assert len(IN_FLIGHT_STATUSES) == len(set(IN_FLIGHT_STATUSES))


def test_the_sensors_share_the_one_list() -> None:
    assert kafka_offsets.IN_FLIGHT_STATUSES is IN_FLIGHT_STATUSES
    assert mongo_watermark.IN_FLIGHT_STATUSES is IN_FLIGHT_STATUSES
    # A run being canceled will not materialize anything, so it supersedes no failed run.
    superseding = set(reexecution._SUPERSEDING_STATUSES)
    assert superseding == set(IN_FLIGHT_STATUSES) - {DagsterRunStatus.CANCELING} | {DagsterRunStatus.SUCCESS}


def test_no_module_outside_resources_spells_out_its_own_list_of_run_statuses() -> None:
    # QUEUED / NOT_STARTED appear only in lists of runs not finished yet (the watchdog's set of
    # runs with a live worker, STARTING / STARTED, is another question).
    spelled = re.compile(r"DagsterRunStatus\.(QUEUED|NOT_STARTED)\b")
    offenders = []
    for folder in ("sensors", "orchestration", "assets", "resources", "bench", "api", "dbt_like_sql"):
        for path in (ROOT / folder).rglob("*.py"):
            if path != ROOT / "resources" / "run_status.py" and spelled.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
