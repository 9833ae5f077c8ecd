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
import math
import multiprocessing as mp
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from generators import messages
from generators.messages import DEFECTS, GeneratedEvent, SinkReport, break_message, encode, summary
from generators.messages import seeded_uuid as _uuid

__all__ = [
    "CATEGORIES",
    "BAD_KINDS",
    "GeneratedEvent",
    "Product",
    "build_catalogue",
    "generate_events",
    "main",
    "produce_parallel",
    "produce_to_kafka",
    "write_jsonl_files",
]

# Category -> (price range in USD, product nouns, search terms).
CATEGORIES: dict[str, tuple[tuple[float, float], tuple[str, ...], tuple[str, ...]]] = {
    "Electronics": (
        (19.0, 2499.0),
        ("Headphones", "Smartphone", "Laptop", "Monitor", "Keyboard", "Speaker", "Smartwatch", "Camera"),
        ("wireless headphones", "4k monitor", "gaming laptop", "bluetooth speaker", "usb-c charger"),
    ),
    "Books": (
        (6.0, 89.0),
        ("Novel", "Cookbook", "Biography", "Atlas", "Poetry Collection", "Textbook", "Comic"),
        ("bestseller", "python programming", "fantasy novel", "history of brazil", "cookbook"),
    ),
    "Clothing": (
        (9.0, 249.0),
        ("T-Shirt", "Jeans", "Jacket", "Sneakers", "Dress", "Hoodie", "Cap", "Socks"),
        ("running shoes", "winter jacket", "cotton t-shirt", "summer dress", "denim"),
    ),
    "Home & Kitchen": (
        (8.0, 699.0),
        ("Blender", "Coffee Maker", "Frying Pan", "Lamp", "Pillow", "Knife Set", "Vacuum"),
        ("air fryer", "espresso machine", "non-stick pan", "led lamp", "bed sheets"),
    ),
    "Sports": (
        (7.0, 899.0),
        ("Yoga Mat", "Dumbbells", "Bicycle", "Tennis Racket", "Football", "Water Bottle", "Tent"),
        ("yoga mat", "adjustable dumbbells", "mountain bike", "camping tent", "football"),
    ),
    "Toys": (
        (5.0, 199.0),
        ("Puzzle", "Building Blocks", "Doll", "Board Game", "RC Car", "Plush Bear"),
        ("lego", "board game", "puzzle 1000 pieces", "rc car", "plush"),
    ),
    "Beauty": (
        (4.0, 159.0),
        ("Shampoo", "Perfume", "Face Cream", "Lipstick", "Hair Dryer", "Sunscreen"),
        ("perfume", "vitamin c serum", "sunscreen spf 50", "hair dryer", "shampoo"),
    ),
    "Grocery": (
        (1.5, 49.0),
        ("Coffee Beans", "Olive Oil", "Chocolate", "Green Tea", "Pasta", "Granola"),
        ("arabica coffee", "olive oil", "dark chocolate", "green tea", "gluten free pasta"),
    ),
}
# Relative popularity of categories in sessions.
CATEGORY_WEIGHTS = {
    "Electronics": 24,
    "Clothing": 18,
    "Home & Kitchen": 14,
    "Books": 12,
    "Sports": 10,
    "Beauty": 9,
    "Toys": 7,
    "Grocery": 6,
}
ADJECTIVES = ("Pro", "Classic", "Eco", "Ultra", "Compact", "Deluxe", "Smart", "Essential", "Premium", "Mini")
PAYMENT_METHODS = (("credit_card", 55), ("debit_card", 15), ("paypal", 12), ("pix", 12), ("boleto", 6))
BAD_KINDS: tuple[str, ...] = DEFECTS
# Bigger than the ingest's default COMMERCE_MAX_EVENT_BYTES (64 KiB).
OVERSIZED_BYTES = 96 * 1024
REQUIRED_FIELDS = ("event_id", "event_type", "timestamp", "user_id", "session_id")
CLIENT_ID = "afluente-commerce-generator"


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    category: str
    price: float

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "category": self.category, "price": self.price}


@dataclass
class _Session:
    user_id: str
    session_id: str
    category: str
    steps_left: int
    cart: dict[str, int] = field(default_factory=dict)
    viewed: list[Product] = field(default_factory=list)


def build_catalogue(size: int = 240, seed: int = 7) -> list[Product]:
    """A deterministic catalogue of ``size`` products spread over :data:`CATEGORIES`."""
    rng = random.Random(seed)
    names = list(CATEGORIES)
    products = []
    for index in range(size):
        category = names[index % len(names)]
        (low, high), nouns, _ = CATEGORIES[category]
        noun = nouns[(index // len(names)) % len(nouns)]
        adjective = ADJECTIVES[rng.randrange(len(ADJECTIVES))]
        # Log-uniform prices within the category range, rounded like a shop would.
        price = math.exp(rng.uniform(math.log(low), math.log(high)))
        price = round(max(low, math.floor(price) + 0.99 if price > 10 else price), 2)
        products.append(Product(f"PROD{index + 1:05d}", f"{adjective} {noun} {index + 1}", category, price))
    return products


class _Simulator:
    """Session state machine producing intended events (dicts) one at a time."""

    def __init__(
        self,
        seed: int,
        users: list[str],
        catalogue: list[Product],
        concurrent_sessions: int,
    ) -> None:
        self.rng = random.Random(seed)
        self.users = users
        self.catalogue = catalogue
        self.by_category: dict[str, list[Product]] = {}
        for product in catalogue:
            self.by_category.setdefault(product.category, []).append(product)
        self.categories = list(CATEGORY_WEIGHTS)
        self.category_weights = [CATEGORY_WEIGHTS[c] for c in self.categories]
        self.payment_methods = [m for m, _ in PAYMENT_METHODS]
        self.payment_weights = [w for _, w in PAYMENT_METHODS]
        self.products = {p.id: p for p in catalogue}
        self.sessions: list[_Session] = []
        self.concurrent = max(1, concurrent_sessions)
        self.pending: list[dict[str, Any]] = []

    def _new_session(self) -> _Session:
        rng = self.rng
        category = rng.choices(self.categories, self.category_weights)[0]
        if category not in self.by_category:
            category = rng.choice(list(self.by_category))
        return _Session(
            user_id=rng.choice(self.users),
            session_id=_uuid(rng),
            category=category,
            steps_left=int(rng.expovariate(1 / 12)) + 2,
        )

    def _pick_product(self, session: _Session) -> Product:
        rng = self.rng
        if session.viewed and rng.random() < 0.35:
            return rng.choice(session.viewed)
        pool = self.by_category[session.category] if rng.random() < 0.8 else self.catalogue
        # Popularity skew: earlier products in a category sell more (Zipf-like).
        index = min(int(rng.paretovariate(1.2)) - 1, len(pool) - 1)
        return pool[index]

    def _base(self, session: _Session, event_type: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": _uuid(self.rng),
            "event_type": event_type,
            "timestamp": at.isoformat(timespec="microseconds"),
            "user_id": session.user_id,
            "session_id": session.session_id,
        }

    def next_event(self, at: datetime) -> dict[str, Any]:
        """The next event of a random active session (checkouts emit one purchase per cart line)."""
        if self.pending:
            event = self.pending.pop(0)
            event["timestamp"] = at.isoformat(timespec="microseconds")
            return event
        rng = self.rng
        while len(self.sessions) < self.concurrent:
            self.sessions.append(self._new_session())
        slot = rng.randrange(len(self.sessions))
        session = self.sessions[slot]
        session.steps_left -= 1
        if session.steps_left <= 0:
            self.sessions[slot] = self._new_session()
            if session.cart and rng.random() < 0.3:
                return self._checkout(session, at)
        roll = rng.random()
        if roll < 0.10:
            _, _, terms = CATEGORIES[session.category]
            event = self._base(session, "search", at)
            event["query"] = rng.choice(terms)
            return event
        if roll < 0.19:
            product = self._pick_product(session)
            quantity = 1 if rng.random() < 0.8 else rng.randint(2, 4)
            session.cart[product.id] = session.cart.get(product.id, 0) + quantity
            event = self._base(session, "add_to_cart", at)
            event.update(product=product.as_json(), quantity=quantity)
            return event
        if roll < 0.22 and session.cart:
            product_id = rng.choice(list(session.cart))
            quantity = session.cart.pop(product_id)
            event = self._base(session, "remove_from_cart", at)
            event.update(product=self.products[product_id].as_json(), quantity=quantity)
            return event
        if roll < 0.225 and session.cart:
            return self._checkout(session, at)
        product = self._pick_product(session)
        session.viewed.append(product)
        event = self._base(session, "page_view", at)
        event["product"] = product.as_json()
        return event

    def _checkout(self, session: _Session, at: datetime) -> dict[str, Any]:
        payment = self.rng.choices(self.payment_methods, self.payment_weights)[0]
        events = []
        for product_id, quantity in session.cart.items():
            product = self.products[product_id]
            event = self._base(session, "purchase", at)
            event.update(
                product=product.as_json(),
                quantity=quantity,
                total_amount=round(product.price * quantity, 2),
                payment_method=payment,
            )
            events.append(event)
        session.cart.clear()
        session.steps_left = 0
        self.pending.extend(events[1:])
        return events[0]


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
    simulator = _Simulator(rng.randrange(2**31), user_ids, catalogue, concurrent_sessions)
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


_COUNTER: Any = None


def _init_worker(counter: Any) -> None:
    global _COUNTER
    _COUNTER = counter


def _worker_main(args: argparse.Namespace, worker: int, count: int | None) -> dict[str, Any]:
    events = generate_events(
        count,
        seed=args.seed,
        bad_share=args.bad_share,
        users=args.users,
        catalogue_size=args.products,
        start=args.start,
        events_per_second=args.sim_rate,
        worker=worker,
        workers=args.workers,
    )

    class _Counter:
        def update(self, n: int) -> None:
            with _COUNTER.get_lock():
                _COUNTER.value += n

    rate = args.rate / args.workers if args.rate else 0.0
    if args.duration:
        events = _take_until_deadline(events, time.monotonic() + args.duration)
    report = produce_to_kafka(events, args.kafka, args.topic, rate=rate, progress=_Counter(), acks=args.acks)
    return {"sent": report.sent, "bad": report.bad}


def _take_until_deadline(events: Iterator[GeneratedEvent], deadline: float) -> Iterator[GeneratedEvent]:
    for item in events:
        if time.monotonic() >= deadline:
            return
        yield item


def _run_kafka(args: argparse.Namespace) -> SinkReport:
    total = args.events
    counts = [None] * args.workers
    if total is not None:
        counts = [total // args.workers + (1 if w < total % args.workers else 0) for w in range(args.workers)]
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    report = SinkReport()
    started = time.perf_counter()
    bar = tqdm(total=total, unit="ev", desc=f"-> {args.topic}", disable=args.no_progress, file=sys.stderr)
    with bar:
        if args.workers == 1:
            inner = generate_events(
                total,
                seed=args.seed,
                bad_share=args.bad_share,
                users=args.users,
                catalogue_size=args.products,
                start=args.start,
                events_per_second=args.sim_rate,
            )
            if args.duration:
                inner = _take_until_deadline(inner, time.monotonic() + args.duration)
            single = produce_to_kafka(
                inner, args.kafka, args.topic, rate=args.rate, progress=bar, acks=args.acks
            )
            report.sent, report.bad = single.sent, single.bad
        else:
            with ctx.Pool(args.workers, initializer=_init_worker, initargs=(counter,)) as pool:
                pending = [pool.apply_async(_worker_main, (args, w, counts[w])) for w in range(args.workers)]
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
    return _run_kafka(args)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m generators.commerce", description="E-commerce clickstream generator (Kafka or JSONL)."
    )
    parser.add_argument("--events", type=int, default=None, help="messages to send (default: until stopped)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second; 0 = as fast as possible")
    parser.add_argument("--kafka", metavar="BOOTSTRAP", help="bootstrap servers, e.g. 127.0.0.1:9092")
    parser.add_argument("--topic", default="commerce.events", help="Kafka topic (default commerce.events)")
    parser.add_argument("--acks", default="all", choices=("all", "1", "0"), help="producer acks")
    parser.add_argument("--workers", type=int, default=1, help="producer processes (users are split)")
    parser.add_argument("--out", type=Path, help="write JSONL files to this folder instead of Kafka")
    parser.add_argument("--files", type=int, default=1, help="number of JSONL files (events split evenly)")
    parser.add_argument("--gzip", action="store_true", help="gzip the JSONL files (.jsonl.gz)")
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of malformed messages (0-1)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (same seed = same events)")
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
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.days is not None:
        if args.days <= 0 or args.events is None or args.start is not None:
            parser.error("--days needs a positive number of days and --events, and excludes --start")
        # A demo needs history: with wall-clock stamps every event lands in the same minute.
        args.start = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=args.days)
        args.sim_rate = args.events / (args.days * 86400)

    if not 0 <= args.bad_share <= 1:
        parser.error("--bad-share must be between 0 and 1")
    if (args.kafka is None) == (args.out is None):
        parser.error("choose exactly one sink: --kafka BOOTSTRAP or --out FOLDER")
    if args.out is not None and args.events is None:
        parser.error("--out needs --events")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.events is None and args.duration is None and args.rate <= 0:
        parser.error("an unbounded stream needs --rate (or give --events / --duration)")

    if args.out is not None:
        per_file = math.ceil(args.events / args.files)
        events = generate_events(
            args.events,
            seed=args.seed,
            bad_share=args.bad_share,
            users=args.users,
            catalogue_size=args.products,
            start=args.start,
            events_per_second=args.sim_rate,
        )
        bar = tqdm(total=args.events, unit="ev", desc="jsonl", disable=args.no_progress, file=sys.stderr)
        with bar:
            report, paths = write_jsonl_files(
                events, args.out, files=args.files, per_file=per_file, compress=args.gzip, progress=bar
            )
        where = ", ".join(str(p) for p in paths)
    else:
        report = _run_kafka(args)
        where = f"topic {args.topic} at {args.kafka}"
    print(summary(report, where))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
