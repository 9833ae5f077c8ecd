"""What every JSON-event generator shares: the message type, seeded ids, defects, and the two sinks.

A generator yields :class:`GeneratedEvent` (Kafka key, JSON bytes, the intended event or the defect
it carries); :func:`produce_to_kafka` sends them keyed, :func:`write_jsonl_files` lands them as JSONL
files that appear atomically. :func:`break_message` gives a generator malformed messages with one
defect each, so the ingest's dead-letter path always has work.
"""

from __future__ import annotations

import gzip
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

__all__ = [
    "DEFECTS",
    "GeneratedEvent",
    "SinkReport",
    "break_message",
    "encode",
    "produce_to_kafka",
    "producer_config",
    "seeded_uuid",
    "summary",
    "write_jsonl_files",
]

DEFECTS: tuple[str, ...] = (
    "bad_json",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "oversized",
    "not_an_object",
)
encode = msgspec.json.encode


@dataclass(frozen=True)
class GeneratedEvent:
    """One message: Kafka key, JSON value, and what it should become (for tests and reports)."""

    key: str
    value: bytes
    event: dict[str, Any] | None  # the intended event when valid, else None
    bad_kind: str | None = None

    @property
    def valid(self) -> bool:
        return self.bad_kind is None


def seeded_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (same seed, same ids)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def break_message(
    event: dict[str, Any],
    kind: str,
    rng: random.Random,
    *,
    required: Sequence[str],
    retype: Callable[[dict[str, Any]], dict[str, Any]],
    unknown_types: Sequence[str],
    oversized_bytes: int,
) -> bytes:
    """Serialize ``event`` with one defect of ``kind`` (one of :data:`DEFECTS`).

    ``required`` are the fields a missing one is drawn from, ``retype`` returns a copy with a field of
    the wrong type, ``unknown_types`` are event types the decoder does not know, and ``oversized_bytes``
    exceeds the ingest's size limit.
    """
    if kind == "bad_json":
        text = encode(event)
        return text[: max(1, len(text) // 2)]  # truncated mid-document
    if kind == "missing_field":
        broken = dict(event)
        broken.pop(rng.choice(list(required)))
        return encode(broken)
    if kind == "wrong_type":
        return encode(retype(dict(event)))
    if kind == "unknown_event_type":
        return encode({**event, "event_type": rng.choice(list(unknown_types))})
    if kind == "oversized":
        return encode({**event, "debug_blob": "x" * oversized_bytes})
    if kind == "not_an_object":
        return encode([event])
    raise ValueError(f"unknown defect kind {kind!r}")


def producer_config(bootstrap_servers: str, acks: str = "all", client_id: str = "afluente-generator") -> dict:
    """kafka-python producer settings tuned for throughput on a small machine.

    Large batches with a short linger amortize the per-request cost; idempotence keeps per-key order
    and avoids duplicates on retries. Install ``crc32c`` so batch checksums are computed in C.
    """
    return {
        "bootstrap_servers": [s.strip() for s in bootstrap_servers.split(",") if s.strip()],
        "acks": acks,
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "enable_idempotence": True,
        "client_id": client_id,
    }


@dataclass
class SinkReport:
    sent: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, item: GeneratedEvent) -> None:
        self.sent += 1
        if item.bad_kind:
            self.bad[item.bad_kind] = self.bad.get(item.bad_kind, 0) + 1


class _Pacer:
    """Sleeps so that ``rate`` events per second are not exceeded (no-op when rate <= 0)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.started = time.perf_counter()

    def wait(self, sent: int) -> None:
        if self.rate <= 0:
            return
        ahead = sent / self.rate - (time.perf_counter() - self.started)
        if ahead > 0:
            time.sleep(ahead)


def produce_to_kafka(
    events: Iterator[GeneratedEvent],
    bootstrap_servers: str,
    topic: str,
    *,
    rate: float = 0.0,
    progress: Any = None,
    acks: str = "all",
    producer: Any = None,
    client_id: str = "afluente-generator",
) -> SinkReport:
    """Send ``events`` keyed by their key; ``rate`` events/s (0 = as fast as possible). Flushes at the end."""
    from kafka import KafkaProducer

    own = producer is None
    producer = producer or KafkaProducer(**producer_config(bootstrap_servers, acks, client_id))
    report = SinkReport()
    pacer = _Pacer(rate)
    started = time.perf_counter()
    failures: list[BaseException] = []
    try:
        for item in events:
            future = producer.send(topic, key=item.key.encode(), value=item.value)
            if report.sent % 10_000 == 0:
                future.add_errback(failures.append)
            report.add(item)
            if progress is not None and report.sent % 1000 == 0:
                progress.update(1000)
            if rate > 0:
                pacer.wait(report.sent)
        producer.flush()
    finally:
        if own:
            producer.close()
    if failures:
        raise RuntimeError(f"Kafka rejected messages: {failures[0]!r}")
    if progress is not None:
        progress.update(report.sent % 1000)
    report.seconds = time.perf_counter() - started
    return report


def write_jsonl_files(
    events: Iterator[GeneratedEvent],
    out: Path,
    *,
    files: int,
    per_file: int,
    prefix: str,
    compress: bool = False,
    progress: tqdm | None = None,
) -> tuple[SinkReport, list[Path]]:
    """Write ``files`` JSONL files of ``per_file`` lines; each appears atomically (``.part`` then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    report = SinkReport()
    started = time.perf_counter()
    written: list[Path] = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    iterator = iter(events)
    for number in range(1, files + 1):
        suffix = ".jsonl.gz" if compress else ".jsonl"
        final = out / f"{prefix}_{stamp}_{number:03d}{suffix}"
        partial = final.with_name(final.name + ".part")
        opener = gzip.open if compress else open
        with opener(partial, "wb") as handle:
            for _ in range(per_file):
                item = next(iterator, None)
                if item is None:
                    break
                handle.write(item.value.replace(b"\n", b" ") + b"\n")
                report.add(item)
                if progress is not None:
                    progress.update(1)
        partial.rename(final)
        written.append(final)
    report.seconds = time.perf_counter() - started
    return report, written


def summary(report: SinkReport, where: str) -> str:
    """The line a generator CLI prints at the end."""
    bad = sum(report.bad.values())
    detail = ", ".join(f"{k}={v}" for k, v in sorted(report.bad.items())) or "none"
    rate = report.sent / report.seconds if report.seconds else 0.0
    return (
        f"sent {report.sent} events ({bad} malformed: {detail}) to {where} "
        f"in {report.seconds:.1f}s ({rate:,.0f} events/s)"
    )
