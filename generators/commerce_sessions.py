"""Shoppers' sessions as a state machine: what the commerce generator's next event is.

Concurrent sessions of random users browse one category (page views, searches), fill and empty
their cart, and sometimes check out, which yields one ``purchase`` per cart line. The simulator only
decides intended events (dicts); ids come from its seeded random source, timestamps from the caller.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from generators.commerce_catalogue import CATEGORIES, CATEGORY_WEIGHTS, Product
from generators.messages import seeded_uuid as _uuid

__all__ = ["PAYMENT_METHODS", "Session", "ShopperSimulator"]

PAYMENT_METHODS = (("credit_card", 55), ("debit_card", 15), ("paypal", 12), ("pix", 12), ("boleto", 6))


@dataclass
class Session:
    """One shopper's visit: who, which category, steps left before leaving, cart and viewed products."""

    user_id: str
    session_id: str
    category: str
    steps_left: int
    cart: dict[str, int] = field(default_factory=dict)
    viewed: list[Product] = field(default_factory=list)


class ShopperSimulator:
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
        self.sessions: list[Session] = []
        self.concurrent = max(1, concurrent_sessions)
        self.pending: list[dict[str, Any]] = []

    def _new_session(self) -> Session:
        rng = self.rng
        category = rng.choices(self.categories, self.category_weights)[0]
        if category not in self.by_category:
            category = rng.choice(list(self.by_category))
        return Session(
            user_id=rng.choice(self.users),
            session_id=_uuid(rng),
            category=category,
            steps_left=int(rng.expovariate(1 / 12)) + 2,
        )

    def _pick_product(self, session: Session) -> Product:
        rng = self.rng
        if session.viewed and rng.random() < 0.35:
            return rng.choice(session.viewed)
        pool = self.by_category[session.category] if rng.random() < 0.8 else self.catalogue
        # Popularity skew: earlier products in a category sell more (Zipf-like).
        index = min(int(rng.paretovariate(1.2)) - 1, len(pool) - 1)
        return pool[index]

    def _base(self, session: Session, event_type: str, at: datetime) -> dict[str, Any]:
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

    def _checkout(self, session: Session, at: datetime) -> dict[str, Any]:
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
