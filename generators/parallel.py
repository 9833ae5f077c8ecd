"""Producing one generator's stream to Kafka from several processes, past one Python process's speed.

Each worker process draws its own share of the generator's users (``source(count, worker=w,
workers=n)``), so one user's events stay in order in one process and so in one partition. The parent
shows one progress bar over a counter the workers share and adds their reports up.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from typing import Any

from tqdm import tqdm

from generators.messages import GeneratedEvent, SinkReport, produce_to_kafka

__all__ = ["EventSource", "produce_with_workers", "take_until_deadline"]

# Called as source(count, worker=w, workers=n); must pickle (a module-level function or a partial of one).
EventSource = Callable[..., Iterator[GeneratedEvent]]

_COUNTER: Any = None


def _init_worker(counter: Any) -> None:
    global _COUNTER
    _COUNTER = counter


class _SharedCounter:
    """The progress a worker reports: added to the counter the parent's bar reads."""

    def update(self, n: int) -> None:
        with _COUNTER.get_lock():
            _COUNTER.value += n


def take_until_deadline(events: Iterator[GeneratedEvent], deadline: float) -> Iterator[GeneratedEvent]:
    """``events`` until ``time.monotonic()`` reaches ``deadline`` (a ``--duration`` bound)."""
    for item in events:
        if time.monotonic() >= deadline:
            return
        yield item


def _produce(
    events: Iterator[GeneratedEvent],
    target: tuple[str, str, str, str],
    *,
    rate: float,
    duration: float | None,
    progress: Any,
) -> SinkReport:
    bootstrap_servers, topic, acks, client_id = target
    if duration:
        events = take_until_deadline(events, time.monotonic() + duration)
    return produce_to_kafka(
        events, bootstrap_servers, topic, rate=rate, progress=progress, acks=acks, client_id=client_id
    )


def _worker_main(
    source: EventSource,
    worker: int,
    workers: int,
    count: int | None,
    target: tuple[str, str, str, str],
    rate: float,
    duration: float | None,
) -> dict[str, Any]:
    events = source(count, worker=worker, workers=workers)
    report = _produce(events, target, rate=rate, duration=duration, progress=_SharedCounter())
    return {"sent": report.sent, "bad": report.bad}


def produce_with_workers(
    source: EventSource,
    total: int | None,
    bootstrap_servers: str,
    topic: str,
    *,
    workers: int,
    bar: tqdm,
    rate: float = 0.0,
    duration: float | None = None,
    acks: str = "all",
    client_id: str = "afluente-generator",
) -> SinkReport:
    """Send ``total`` messages (until stopped when None) from ``workers`` processes sharing ``rate``.

    One worker runs in this process. ``duration`` bounds each worker's time in seconds.
    """
    report = SinkReport()
    started = time.perf_counter()
    target = (bootstrap_servers, topic, acks, client_id)
    if workers == 1:
        single = _produce(
            source(total, worker=0, workers=1), target, rate=rate, duration=duration, progress=bar
        )
        report.sent, report.bad = single.sent, single.bad
        report.seconds = time.perf_counter() - started
        return report
    counts: list[int | None] = [None] * workers
    if total is not None:
        counts = [total // workers + (1 if w < total % workers else 0) for w in range(workers)]
    share = rate / workers if rate else 0.0
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(counter,)) as pool:
        pending = [
            pool.apply_async(_worker_main, (source, w, workers, counts[w], target, share, duration))
            for w in range(workers)
        ]
        while not all(p.ready() for p in pending):
            time.sleep(0.2)
            bar.n = counter.value
            bar.refresh()
        for p in pending:
            result = p.get()
            report.sent += result["sent"]
            for kind, n in result["bad"].items():
                report.bad[kind] = report.bad.get(kind, 0) + n
        bar.n = report.sent
        bar.refresh()
    report.seconds = time.perf_counter() - started
    return report
