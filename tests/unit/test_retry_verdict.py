"""The failure sensor reads a failed run only once Dagster has said whether its own run retries take it
(a run read a moment too early was re-executed twice: by Dagster's retry and by the sensor)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRun

from sensors.reexecution import WILL_RETRY_TAG
from sensors.run_failure import with_retry_verdict


def _instance(tmp_path: Path, retries: bool) -> DagsterInstance:
    overrides = {"run_retries": {"enabled": retries, "max_retries": 1}}
    return DagsterInstance.local_temp(tempdir=str(tmp_path), overrides=overrides)


def test_the_sensor_waits_for_dagsters_retry_verdict(tmp_path: Path) -> None:
    instance = _instance(tmp_path, retries=True)
    run = instance.add_run(DagsterRun(job_name="refresh"))
    tagger = threading.Timer(0.3, lambda: instance.add_run_tags(run.run_id, {WILL_RETRY_TAG: "true"}))
    tagger.start()
    started = time.monotonic()
    seen = with_retry_verdict(instance, run)
    assert seen.tags.get(WILL_RETRY_TAG) == "true"
    assert 0.25 <= time.monotonic() - started < 2.0
    tagger.join()


def test_without_run_retries_nothing_is_awaited(tmp_path: Path) -> None:
    instance = _instance(tmp_path, retries=False)
    run = instance.add_run(DagsterRun(job_name="refresh"))
    started = time.monotonic()
    assert WILL_RETRY_TAG not in with_retry_verdict(instance, run).tags
    assert time.monotonic() - started < 0.5


def test_the_wait_is_bounded(tmp_path: Path) -> None:
    instance = _instance(tmp_path, retries=True)
    run = instance.add_run(DagsterRun(job_name="refresh"))
    started = time.monotonic()
    assert WILL_RETRY_TAG not in with_retry_verdict(instance, run, wait_s=0.2).tags
    assert time.monotonic() - started < 1.0
