"""Realistic e-commerce clickstream for Kafka or JSONL landing files (demos, tests, benchmarks).

Simulated shoppers run sessions over a product catalogue (categories with their own price ranges):
they view products, search, add to and remove from their cart, and some check out, which emits one
``purchase`` per cart line (event shape of domains.md section 1, keyed by ``user_id`` so a user's
events stay ordered in one partition). A share of messages can be broken on purpose, each with one
defect the ingest must dead-letter: bad JSON, a missing field, a wrong type, an unknown event type,
an oversized payload, or a JSON value that is not an object.

Everything is seeded: the same arguments produce the same events (ids included), so tests can
compute expected aggregates from the generator itself. Usage::

    python -m generators.commerce --events 100000 --kafka 127.0.0.1:9092 --topic commerce.events
    python -m generators.commerce --rate 2 --duration 60 --kafka 127.0.0.1:9092   # seed pace
    python -m generators.commerce --events 20000 --out data/landing/commerce --files 2 --bad-share 0.01
"""

from __future__ import annotations

import argparse
import functools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from generators import messages
from generators.cli import add_stream_arguments, check_one_sink, progress_bar, write_files
from generators.commerce_catalogue import build_catalogue
from generators.commerce_sessions import ShopperSimulator
from generators.messages import DEFECTS, GeneratedEvent, SinkReport, break_message, encode, summary
from generators.parallel import produce_with_workers

__all__ = [
    "BAD_KINDS",
    "GeneratedEvent",
    "generate_events",
    "main",
    "produce_parallel",
    "produce_to_kafka",
    "write_jsonl_files",
]

BAD_KINDS: tuple[str, ...] = DEFECTS
# Bigger than the ingest's default COMMERCE_MAX_EVENT_BYTES (64 KiB).
OVERSIZED_BYTES = 96 * 1024
REQUIRED_FIELDS = ("event_id", "event_type", "timestamp", "user_id", "session_id")
CLIENT_ID = "afluente-commerce-generator"


def _retype(event: dict[str, Any]) -> dict[str, Any]:
    if "product" in event:
        event["product"] = {**event["product"], "price": f"{event['product']['price']} USD"}
    else:
        event["user_id"] = 12345
    return event


def _break(event: dict[str, Any], kind: str, rng: random.Random) -> bytes:
    """Serialize ``event`` with one defect of ``kind``."""
    return break_message(
        event,
        kind,
        rng,
        required=REQUIRED_FIELDS,
        retype=_retype,
        unknown_types=("wishlist_add", "PAGEVIEW", "checkout"),
        oversized_bytes=OVERSIZED_BYTES,
    )


def generate_events(
    count: int | None,
    *,
    seed: int = 42,
    bad_share: float = 0.0,
    users: int = 5000,
    catalogue_size: int = 240,
    concurrent_sessions: int = 200,
    start: datetime | None = None,
    events_per_second: float = 50.0,
    worker: int = 0,
    workers: int = 1,
) -> Iterator[GeneratedEvent]:
    """Yield ``count`` messages (forever when None).

    Timestamps are the wall clock (UTC) when ``start`` is None, else a simulated clock from
    ``start`` advancing ``1 / events_per_second`` per event. With ``count`` known, exactly
    ``round(count * bad_share)`` messages are broken; otherwise each is broken with that probability.
    ``worker``/``workers`` split the user population so parallel producers keep per-user order.
    """
    rng = random.Random(seed * 1_000_003 + worker)
    user_ids = [f"USER{i:06d}" for i in range(1, users + 1) if (i % workers) == worker] or ["USER000001"]
    catalogue = build_catalogue(catalogue_size)
    simulator = ShopperSimulator(rng.randrange(2**31), user_ids, catalogue, concurrent_sessions)
    bad_rows: set[int] | None = None
    if count is not None and bad_share > 0:
        bad_rows = set(rng.sample(range(count), min(count, round(count * bad_share))))
    step = timedelta(seconds=1 / events_per_second) if events_per_second > 0 else timedelta(0)
    clock = start.astimezone(UTC).replace(tzinfo=None) if start is not None and start.tzinfo else start
    index = 0
    while count is None or index < count:
        at = clock if clock is not None else datetime.now(UTC).replace(tzinfo=None)
        event = simulator.next_event(at)
        broken = index in bad_rows if bad_rows is not None else (bad_share > 0 and rng.random() < bad_share)
        if broken:
            kind = BAD_KINDS[rng.randrange(len(BAD_KINDS))]
            yield GeneratedEvent(event["user_id"], _break(event, kind, rng), None, kind)
        else:
            yield GeneratedEvent(event["user_id"], encode(event), event)
        index += 1
        if clock is not None:
            clock += step


# ------------------------------------------------------------------------------------------------
# Sinks


def producer_config(bootstrap_servers: str, acks: str = "all") -> dict[str, Any]:
    """The shared producer settings (:func:`generators.messages.producer_config`) for this generator."""
    return messages.producer_config(bootstrap_servers, acks, CLIENT_ID)


def produce_to_kafka(
    events: Iterator[GeneratedEvent],
    bootstrap_servers: str,
    topic: str,
    *,
    rate: float = 0.0,
    progress: Any = None,
    acks: str = "all",
    producer: Any = None,
) -> SinkReport:
    """Send ``events`` keyed by user id (:func:`generators.messages.produce_to_kafka`)."""
    return messages.produce_to_kafka(
        events,
        bootstrap_servers,
        topic,
        rate=rate,
        progress=progress,
        acks=acks,
        producer=producer,
        client_id=CLIENT_ID,
    )


def write_jsonl_files(
    events: Iterator[GeneratedEvent],
    out: Path,
    *,
    files: int,
    per_file: int,
    prefix: str = "commerce_events",
    compress: bool = False,
    progress: tqdm | None = None,
) -> tuple[SinkReport, list[Path]]:
    """JSONL files named ``commerce_events_*`` (:func:`generators.messages.write_jsonl_files`)."""
    return messages.write_jsonl_files(
        events, out, files=files, per_file=per_file, prefix=prefix, compress=compress, progress=progress
    )


def _source(args: argparse.Namespace) -> functools.partial[Iterator[GeneratedEvent]]:
    """:func:`generate_events` bound to the CLI's options: called with the count (and worker share)."""
    return functools.partial(
        generate_events,
        seed=args.seed,
        bad_share=args.bad_share,
        users=args.users,
        catalogue_size=args.products,
        start=args.start,
        events_per_second=args.sim_rate,
    )


def _produce(args: argparse.Namespace) -> SinkReport:
    """``--kafka``: ``--workers`` producer processes, each with its share of the users."""
    with progress_bar(args, args.events, desc=f"-> {args.topic}", unit="ev") as bar:
        return produce_with_workers(
            _source(args),
            args.events,
            args.kafka,
            args.topic,
            workers=args.workers,
            bar=bar,
            rate=args.rate,
            duration=args.duration,
            acks=args.acks,
            client_id=CLIENT_ID,
        )


def produce_parallel(
    events: int,
    bootstrap_servers: str,
    topic: str,
    *,
    workers: int = 2,
    bad_share: float = 0.0,
    seed: int = 42,
    rate: float = 0.0,
    start: datetime | None = None,
    progress: bool = False,
) -> SinkReport:
    """Produce ``events`` messages with ``workers`` producer processes (users split between them)."""
    args = argparse.Namespace(
        events=events,
        duration=None,
        rate=rate,
        kafka=bootstrap_servers,
        topic=topic,
        acks="all",
        workers=workers,
        bad_share=bad_share,
        seed=seed,
        users=5000,
        products=240,
        start=start,
        sim_rate=50.0,
        no_progress=not progress,
    )
    return _produce(args)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m generators.commerce", description="E-commerce clickstream generator (Kafka or JSONL)."
    )
    parser.add_argument("--events", type=int, default=None, help="messages to send (default: until stopped)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    add_stream_arguments(parser, topic="commerce.events", unit="event")
    parser.add_argument("--acks", default="all", choices=("all", "1", "0"), help="producer acks")
    parser.add_argument("--workers", type=int, default=1, help="producer processes (users are split)")
    parser.add_argument("--users", type=int, default=5000, help="number of distinct users")
    parser.add_argument("--products", type=int, default=240, help="catalogue size")
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=None,
        help="simulated clock start (ISO); default: event timestamps are the wall clock",
    )
    parser.add_argument(
        "--sim-rate", type=float, default=50.0, help="events per simulated second when --start is set"
    )
    parser.add_argument(
        "--days",
        type=float,
        default=None,
        help="spread --events evenly over the last N days, ending now (sets --start and --sim-rate)",
    )
    args = parser.parse_args(argv)
    if args.days is not None:
        if args.days <= 0 or args.events is None or args.start is not None:
            parser.error("--days needs a positive number of days and --events, and excludes --start")
        # A demo needs history: with wall-clock stamps every event lands in the same minute.
        args.start = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=args.days)
        args.sim_rate = args.events / (args.days * 86400)

    if not 0 <= args.bad_share <= 1:
        parser.error("--bad-share must be between 0 and 1")
    check_one_sink(parser, args)
    if args.out is not None and args.events is None:
        parser.error("--out needs --events")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.events is None and args.duration is None and args.rate <= 0:
        parser.error("an unbounded stream needs --rate (or give --events / --duration)")

    if args.out is not None:
        events = _source(args)(args.events)
        with progress_bar(args, args.events, desc="jsonl", unit="ev") as bar:
            report, where = write_files(args, events, total=args.events, prefix="commerce_events", bar=bar)
    else:
        report = _produce(args)
        where = f"topic {args.topic} at {args.kafka}"
    print(summary(report, where))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
