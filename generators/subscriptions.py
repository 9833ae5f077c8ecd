"""Realistic subscription-platform commands for the ``user_events`` topic or JSONL landing files.

Each simulated user signs up (``usuario_criado``), most subscribe to a plan within days
(``assinatura_criada``) and pay every 30 days (``pagamento_registrado``, by card, PIX or boleto; some
are declined and retried with a new key); along the way some upgrade or downgrade
(``assinatura_alterada``), set preferences (``config_atualizada``), cancel (``assinatura_cancelada``),
come back, or are cancelled after repeated declines. So that the processing has rejections and
duplicates to handle, a few payments are resent with the same idempotency key, a few arrive after
the subscription was cancelled, and a few name users that never signed up.

Messages carry the command API's envelope (:mod:`api.commands`: ``event_id`` = ``correlation_id``,
``occurred_at`` ISO UTC, ``idempotency_key``, ``payload`` as the API's pydantic models dump it), keyed
by user id, in time order over ``--days`` ending now (a user exists before paying, pays before
cancelling, ...). Ids of keyed commands are derived as the API derives them, so a resent payment
names the same command. ``--bad-share`` adds malformed messages (one defect each) on top of the
valid stream, which stays consistent. Same seed, same messages. Usage::

    python -m generators.subscriptions --users 2000 --days 30 --kafka 127.0.0.1:9092
    python -m generators.subscriptions --users 2000 --days 90 --out data/landing/subscriptions --files 2
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from api.commands import correlation_id_for, new_user_id
from generators.cli import add_stream_arguments, check_one_sink, progress_bar, write_files
from generators.messages import (
    DEFECTS,
    GeneratedEvent,
    SinkReport,
    break_message,
    encode,
    produce_to_kafka,
    seeded_uuid,
    summary,
)
from generators.people import FIRST, LAST  # the same people as the usage generator's

__all__ = ["EVENT_TYPES", "METHODS", "PLANS", "generate_commands", "main"]

EVENT_TYPES = (
    "usuario_criado",
    "assinatura_criada",
    "assinatura_alterada",
    "assinatura_cancelada",
    "pagamento_registrado",
    "config_atualizada",
)
# Plan -> monthly price (BRL, as the API dumps a Decimal), from cheapest to dearest; and how often chosen.
PLANS: dict[str, str] = {"basico": "19.90", "padrao": "39.90", "premium": "59.90", "familia": "89.90"}
PLAN_WEIGHTS = (40, 32, 18, 10)
# Payment method -> (weight, share declined by the provider).
METHODS: dict[str, tuple[int, float]] = {
    "cartao_credito": (52, 0.07),
    "pix": (28, 0.01),
    "cartao_debito": (12, 0.09),
    "boleto": (8, 0.15),
}
ROUTES = {
    "usuario_criado": "POST /usuarios",
    "pagamento_registrado": "POST /usuarios/{id}/pagamento",
}
CYCLE = timedelta(days=30)
SUBSCRIBE_SHARE = 0.75  # users who subscribe at all
CHURN_PER_CYCLE = 0.06  # voluntary cancellations per billing cycle
UPGRADE_PER_CYCLE, DOWNGRADE_PER_CYCLE = 0.07, 0.03
COMEBACK_SHARE = 0.15  # cancelled users who subscribe again
DUPLICATE_SHARE = 0.04  # payments resent with the same idempotency key
LATE_PAYMENT_SHARE = 0.2  # cancellations followed by one more (rejected) charge
UNKNOWN_USER_SHARE = 0.01  # payments for never-created users, per user
MAX_DECLINES = 3  # declined charges in a row before the subscription is cancelled
DOMAINS = ("gmail.com", "outlook.com", "yahoo.com.br", "uol.com.br", "empresa.com.br")
# Bigger than the Kafka topic source's default max_message_bytes (64 KiB).
OVERSIZED_BYTES = 96 * 1024
ENVELOPE_FIELDS = ("event_id", "correlation_id", "event_type", "user_id", "occurred_at", "payload")

Command = tuple[datetime, dict[str, Any]]


def _iso(at: datetime) -> str:
    """``occurred_at`` as the command API writes it (microseconds, ``Z``)."""
    return at.isoformat(timespec="microseconds") + "Z"


class _User:
    """One user's life as commands in time order (lazily, one billing cycle at a time)."""

    def __init__(self, seed: int, number: int, start: datetime, end: datetime) -> None:
        self.rng = random.Random(f"{seed}:user:{number}")
        self.number = number
        self.end = end
        span = (end - start).total_seconds()
        # Mild growth: more sign-ups towards the end of the window.
        self.created = start + timedelta(seconds=span * self.rng.random() ** 0.85)
        self.key = f"signup-{seeded_uuid(self.rng)}"
        self.user_id = new_user_id(self.key)
        self.method = self._method()
        self.last = self.created  # time of the latest command yielded: the next batch starts after it

    def _method(self) -> str:
        return self.rng.choices(list(METHODS), [weight for weight, _ in METHODS.values()])[0]

    def _command(
        self, at: datetime, event_type: str, payload: dict[str, Any], key: str | None = None
    ) -> Command:
        route = ROUTES.get(event_type)
        correlation_id = (
            correlation_id_for(route, self.user_id, key) if route and key else seeded_uuid(self.rng)
        )
        return at, {
            "event_id": correlation_id,
            "correlation_id": correlation_id,
            "event_type": event_type,
            "user_id": self.user_id,
            "occurred_at": _iso(at),
            "idempotency_key": key,
            "payload": payload,
        }

    def _payment(self, at: datetime, plan: str, status: str, method: str) -> list[Command]:
        key = f"pay-{seeded_uuid(self.rng)}"
        payload = {"valor": PLANS[plan], "metodo": method, "status": status}
        sent = [self._command(at, "pagamento_registrado", payload, key)]
        if self.rng.random() < DUPLICATE_SHARE:  # the client timed out and retried: same key, later
            again = at + timedelta(seconds=self.rng.uniform(2, 300))
            sent.append((again, {**sent[0][1], "occurred_at": _iso(again)}))
        return sent

    def commands(self) -> Iterator[Command]:
        """Sign-up, preferences, then subscription cycles until the end of the window."""
        rng, at = self.rng, self.created
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{last.lower()}{self.number}@{rng.choice(DOMAINS)}"
        email = email.translate(str.maketrans("ãáéíóúç", "aaeiouc"))
        signup = self._command(at, "usuario_criado", {"nome": f"{first} {last}", "email": email}, self.key)
        batch = [signup]
        if rng.random() < 0.02:  # a retried sign-up: same key, same user, same correlation id
            again = at + timedelta(seconds=rng.uniform(1, 30))
            batch.append((again, {**signup[1], "occurred_at": _iso(again)}))
        if rng.random() < 0.4:
            batch.append(self._preferences(at + timedelta(minutes=rng.uniform(1, 600))))
        yield from self._until_end(batch)
        if rng.random() >= SUBSCRIBE_SHARE:
            return
        at = max(at + timedelta(hours=rng.expovariate(1 / 30)), self.last + timedelta(minutes=1))
        while at < self.end:
            cancelled = yield from self._subscription(at)
            if not cancelled or rng.random() >= COMEBACK_SHARE:
                return
            at = self.last + timedelta(days=rng.uniform(3, 25))

    def _preferences(self, at: datetime) -> Command:
        rng = self.rng
        preferences: dict[str, Any] = {"idioma": rng.choice(("pt-BR", "pt-BR", "en-US", "es-ES"))}
        if rng.random() < 0.7:
            preferences["notificacoes_email"] = rng.random() < 0.6
        if rng.random() < 0.5:
            preferences["tema"] = rng.choice(("claro", "escuro"))
        return self._command(at, "config_atualizada", {"preferencias": preferences})

    def _until_end(self, batch: list[Command]) -> Iterator[Command]:
        for command in sorted(batch, key=lambda c: c[0]):
            if command[0] < self.end:
                self.last = command[0]
                yield command

    def _subscription(self, at: datetime) -> Generator[Command, None, bool]:
        """One subscription until the window's end or its cancellation (True: cancelled inside the window)."""
        rng = self.rng
        plans = list(PLANS)
        plan = rng.choices(plans, PLAN_WEIGHTS)[0]
        yield from self._until_end(
            [self._command(at, "assinatura_criada", {"plano": plan, "valor_mensal": PLANS[plan]})]
        )
        due = at + timedelta(minutes=rng.uniform(1, 20))
        while due < self.end:
            batch, declines, charge = [], 0, due
            while True:  # the cycle's charge, retried after declines with a new key
                method = self.method if rng.random() < 0.85 else self._method()
                declined = rng.random() < METHODS[method][1]
                batch += self._payment(charge, plan, "recusado" if declined else "aprovado", method)
                if not declined:
                    break
                declines += 1
                charge += timedelta(days=rng.uniform(1, 3))
                if declines == MAX_DECLINES:
                    batch.append(self._cancel(charge))
                    yield from self._until_end(batch)
                    return charge < self.end
            cycle_end = due + CYCLE
            roll = rng.random()
            if roll < CHURN_PER_CYCLE:
                cancel_at = due + (cycle_end - due) * rng.uniform(0.1, 0.95)
                batch.append(self._cancel(cancel_at))
                if rng.random() < LATE_PAYMENT_SHARE:  # charged anyway at the next due date: rejected
                    batch += self._payment(cycle_end, plan, "aprovado", self.method)
                yield from self._until_end(batch)
                return cancel_at < self.end
            index = plans.index(plan)
            upgrade = roll < CHURN_PER_CYCLE + UPGRADE_PER_CYCLE and index < len(plans) - 1
            downgrade = not upgrade and roll > 1 - DOWNGRADE_PER_CYCLE and index > 0
            if upgrade or downgrade:
                plan = plans[index + (1 if upgrade else -1)]
                change_at = due + (cycle_end - due) * rng.uniform(0.35, 0.9)  # after any retried charge
                batch.append(
                    self._command(
                        change_at, "assinatura_alterada", {"plano": plan, "valor_mensal": PLANS[plan]}
                    )
                )
            if rng.random() < 0.1:
                batch.append(self._preferences(due + (cycle_end - due) * rng.random()))
            yield from self._until_end(batch)
            due = cycle_end
        return False

    def _cancel(self, at: datetime) -> Command:
        return self._command(at, "assinatura_cancelada", {})


def _stray_payments(seed: int, count: int, start: datetime, end: datetime) -> Iterator[Command]:
    """Payments for users that never signed up (the processing rejects them), in time order."""
    rng = random.Random(f"{seed}:unknown")
    span = (end - start).total_seconds()
    moments = sorted(start + timedelta(seconds=span * rng.random()) for _ in range(count))
    for number, at in enumerate(moments, start=1):
        stranger = _User(seed, -number, start, end)
        stranger.user_id = f"desconhecido-{seeded_uuid(rng)}"
        yield from stranger._payment(at, rng.choice(list(PLANS)), "aprovado", stranger.method)


def _timeline(seed: int, users: int, start: datetime, end: datetime) -> Iterator[Command]:
    """Every user's commands merged in time order; users start lazily, so memory follows activity."""
    population = sorted((_User(seed, n, start, end) for n in range(1, users + 1)), key=lambda u: u.created)
    strays = _stray_payments(seed, math.ceil(users * UNKNOWN_USER_SHARE), start, end)
    heap: list[tuple[datetime, int, dict[str, Any], Iterator[Command]]] = []
    order = itertools.count()  # ties keep insertion order, so one user's commands stay in order

    def push(source: Iterator[Command]) -> None:
        for at, event in source:
            heapq.heappush(heap, (at, next(order), event, source))
            return

    push(strays)
    waiting = iter(population)
    upcoming = next(waiting, None)
    while heap or upcoming is not None:
        while upcoming is not None and (not heap or upcoming.created <= heap[0][0]):
            push(upcoming.commands())
            upcoming = next(waiting, None)
        if not heap:
            continue
        at, _, event, source = heapq.heappop(heap)
        yield at, event
        push(source)


def _retype(event: dict[str, Any]) -> dict[str, Any]:
    """The payload as a JSON string instead of an object."""
    event["payload"] = encode(event["payload"]).decode()
    return event


def generate_commands(
    *,
    users: int = 2000,
    days: float = 30.0,
    seed: int = 42,
    bad_share: float = 0.0,
    end: datetime | None = None,
) -> Iterator[GeneratedEvent]:
    """Yield the commands of ``users`` users over ``days`` days ending at ``end`` (UTC, default now).

    With ``bad_share`` (0 <= share < 1), malformed messages are added so that they are that share of
    all messages (rounded), each right after the valid message it is a broken copy of.
    """
    if not 0 <= bad_share < 1:
        raise ValueError("bad_share must be in [0, 1)")
    end = end or datetime.now(UTC)
    if end.tzinfo is not None:
        end = end.astimezone(UTC).replace(tzinfo=None)
    start = end - timedelta(days=days)
    broken: dict[int, str] = {}
    rng = random.Random(f"{seed}:bad")
    if bad_share > 0:
        valid = sum(1 for _ in _timeline(seed, users, start, end))
        wanted = min(valid, round(valid * bad_share / (1 - bad_share)))
        broken = {
            index: DEFECTS[i % len(DEFECTS)] for i, index in enumerate(rng.sample(range(valid), wanted))
        }
    for index, (_, event) in enumerate(_timeline(seed, users, start, end)):
        yield GeneratedEvent(event["user_id"], encode(event), event)
        kind = broken.get(index)
        if kind is not None:
            value = break_message(
                event,
                kind,
                rng,
                required=ENVELOPE_FIELDS,
                retype=_retype,
                unknown_types=("assinatura_pausada", "USUARIO_CRIADO", "pagamento"),
                oversized_bytes=OVERSIZED_BYTES,
            )
            yield GeneratedEvent(event["user_id"], value, None, kind)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m generators.subscriptions",
        description="Subscription-platform command generator (user_events on Kafka, or JSONL files).",
    )
    parser.add_argument("--users", type=int, default=2000, help="users who sign up (default 2000)")
    parser.add_argument("--days", type=float, default=30.0, help="spread over the last N days (default 30)")
    add_stream_arguments(parser, topic="user_events", unit="message")
    args = parser.parse_args(argv)
    if not 0 <= args.bad_share < 1:
        parser.error("--bad-share must be at least 0 and below 1")
    if args.users < 1 or args.days <= 0 or args.files < 1:
        parser.error("--users, --days and --files must be positive")
    check_one_sink(parser, args)

    end = datetime.now(UTC).replace(tzinfo=None)
    make: Callable[[], Iterator[GeneratedEvent]] = lambda: generate_commands(  # noqa: E731
        users=args.users, days=args.days, seed=args.seed, bad_share=args.bad_share, end=end
    )
    total = sum(1 for _ in make())  # known up front: the progress bar's total and the files' split
    report: SinkReport
    with progress_bar(args, total, desc="commands", unit="msg") as bar:
        if args.out is not None:
            report, where = write_files(args, make(), total=total, prefix="user_events", bar=bar)
        else:
            report = produce_to_kafka(
                make(),
                args.kafka,
                args.topic,
                rate=args.rate,
                progress=bar,
                client_id="afluente-subscriptions",
            )
            where = f"topic {args.topic} at {args.kafka}"
    print(summary(report, where))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
