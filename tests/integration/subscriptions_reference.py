"""Commands for the subscriptions processing tests and what they must produce, computed in Python.

:func:`scenario` builds command envelopes (as the command API produces them): hand-written cases
(plan change, cancellation, payment for an unknown user, for a cancelled subscription, a payment
retried under the same idempotency key, a message delivered twice) plus seeded random traffic.
:func:`expected` replays them one by one with a plain state machine, independently of the SQL
models, and returns the outcomes, state tables and marts the models must equal.
"""

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

PLANS = {"basico": Decimal("29.90"), "padrao": Decimal("44.90"), "premium": Decimal("59.90")}
METHODS = ("cartao_credito", "cartao_debito", "pix", "boleto")
START = datetime(2024, 1, 3, 9, 0, 0)


def _cid(seed: random.Random) -> str:
    return str(uuid.UUID(int=seed.getrandbits(128), version=4))


@dataclass
class Scenario:
    """The envelopes to send (in order; some twice), and the malformed messages with their reason."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[tuple[bytes, str]] = field(default_factory=list)
    clock: datetime = START
    rng: random.Random = field(default_factory=lambda: random.Random(16))

    def add(
        self,
        event_type: str,
        user_id: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        after: timedelta = timedelta(hours=7),
        cid: str | None = None,
    ) -> dict[str, Any]:
        self.clock += after
        correlation_id = cid or _cid(self.rng)
        command = {
            "event_id": correlation_id,
            "correlation_id": correlation_id,
            "event_type": event_type,
            "user_id": user_id,
            "occurred_at": self.clock.isoformat(timespec="microseconds") + "Z",
            "idempotency_key": key,
            "payload": payload,
        }
        self.commands.append(command)
        return command


def scenario(random_users: int = 25, seed: int = 16) -> Scenario:
    """Hand-written cases first, then random traffic spread over about four months."""
    s = Scenario(rng=random.Random(seed))
    s.add("usuario_criado", "u-ana", {"nome": "Ana", "email": "ana@example.com"})
    s.add("assinatura_criada", "u-ana", {"plano": "basico", "valor_mensal": "29.90"})
    s.add("usuario_criado", "u-bia", {"nome": "Bia", "email": "bia@example.com"})
    s.add("assinatura_criada", "u-bia", {"plano": "premium", "valor_mensal": "59.90"})
    s.add("pagamento_registrado", "u-ghost", {"valor": "10.00", "metodo": "pix", "status": "aprovado"})
    s.add(
        "assinatura_alterada",
        "u-ana",
        {"plano": "premium", "valor_mensal": "59.90"},
        after=timedelta(days=30),
    )
    paid = s.add(
        "pagamento_registrado",
        "u-ana",
        {"valor": "59.90", "metodo": "pix", "status": "aprovado"},
        key="pay-1",
    )
    s.commands.append(dict(paid))  # the same message delivered twice
    s.add(
        "pagamento_registrado",
        "u-ana",
        {"valor": "59.90", "metodo": "pix", "status": "aprovado"},
        key="pay-1",
    )
    s.add(
        "assinatura_alterada", "u-bia", {"plano": "basico", "valor_mensal": "29.90"}, after=timedelta(days=20)
    )
    s.add("pagamento_registrado", "u-bia", {"valor": "29.90", "metodo": "boleto", "status": "recusado"})
    s.add("assinatura_cancelada", "u-ana", {"plano": None, "valor_mensal": None}, after=timedelta(days=15))
    s.add("pagamento_registrado", "u-ana", {"valor": "59.90", "metodo": "pix", "status": "aprovado"})
    s.add("usuario_criado", "u-caio", {"nome": "Caio", "email": "caio@example.com"})
    s.add(
        "pagamento_registrado", "u-caio", {"valor": "5.00", "metodo": "cartao_debito", "status": "aprovado"}
    )
    s.add("usuario_criado", "u-caio", {"nome": "Caio 2", "email": "caio2@example.com"})
    s.add("config_atualizada", "u-caio", {"preferencias": {"tema": "escuro", "idioma": "pt-BR"}})
    s.add("config_atualizada", "u-caio", {"preferencias": {"tema": "claro"}})
    s.add("assinatura_criada", "u-ana", {"plano": "basico", "valor_mensal": "29.90"}, after=timedelta(days=3))
    s.clock = START
    users = [f"r-{i:03d}" for i in range(random_users)]
    for _ in range(random_users * 8):
        user = s.rng.choice(users)
        kind = s.rng.choices(
            ["usuario_criado", "assinatura_criada", "assinatura_alterada", "assinatura_cancelada",
             "pagamento_registrado", "config_atualizada"],
            weights=[2, 3, 3, 1, 6, 1],
        )[0]  # fmt: skip
        after = timedelta(minutes=s.rng.randint(30, 1200))
        if kind == "usuario_criado":
            s.add(kind, user, {"nome": f"Nome {user}", "email": f"{user}@example.com"}, after=after)
        elif kind in ("assinatura_criada", "assinatura_alterada"):
            plan = s.rng.choice(sorted(PLANS))
            s.add(kind, user, {"plano": plan, "valor_mensal": str(PLANS[plan])}, after=after)
        elif kind == "assinatura_cancelada":
            s.add(kind, user, {"plano": None, "valor_mensal": None}, after=after)
        elif kind == "pagamento_registrado":
            key = f"k-{s.rng.randint(0, 40)}" if s.rng.random() < 0.5 else None
            status = "recusado" if s.rng.random() < 0.2 else "aprovado"
            value = f"{s.rng.randint(500, 9000) / 100:.2f}"
            payload = {"valor": value, "metodo": s.rng.choice(METHODS), "status": status}
            s.add(kind, user, payload, key=key, after=after)
        else:
            s.add(kind, user, {"preferencias": {"tema": s.rng.choice(["claro", "escuro"])}}, after=after)
    good = s.commands[0]
    s.malformed = [
        (b'{"event_id": "x", ', "invalid_json"),
        (
            _bytes({**good, "correlation_id": "bad-1", "event_type": "assinatura_pausada"}),
            "unknown_event_type",
        ),
        (_bytes({**good, "correlation_id": "bad-2", "user_id": None}), "missing_field: user_id"),
        (
            _bytes(
                {
                    **good,
                    "correlation_id": "bad-3",
                    "event_type": "pagamento_registrado",
                    "payload": {"valor": "abc", "metodo": "pix"},
                }
            ),
            "wrong_type: payload.valor",
        ),  # fmt: skip
    ]
    return s


def _bytes(envelope: dict[str, Any]) -> bytes:
    import json

    return json.dumps(envelope).encode()


def _ts(command: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(command["occurred_at"].removesuffix("Z"))


def _month_start(day: datetime) -> datetime:
    return datetime(day.year, day.month, 1)


def _next_month(day: datetime) -> datetime:
    return datetime(day.year + day.month // 12, day.month % 12 + 1, 1)


def expected(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """Replay the commands (first copy of each correlation_id) in time order; see the module docstring."""
    unique: dict[str, dict[str, Any]] = {}
    for command in commands:
        unique.setdefault(command["correlation_id"], command)
    outcomes: dict[str, tuple[str, str | None]] = {}
    users: dict[str, datetime] = {}
    current: dict[str, dict[str, Any]] = {}  # user -> current version
    history: list[dict[str, Any]] = []
    payments: dict[str, dict[str, Any]] = {}
    recorded_keys: dict[tuple[str, str], str] = {}
    for c in sorted(unique.values(), key=_ts):
        cid, user, kind, payload = c["correlation_id"], c["user_id"], c["event_type"], c["payload"]
        active = current.get(user, {}).get("status") == "ativa"
        key = (user, c["idempotency_key"]) if c["idempotency_key"] else None
        if kind == "usuario_criado":
            reason = "user_already_exists" if user in users else None
            users.setdefault(user, _ts(c))
        elif kind == "pagamento_registrado" and key in recorded_keys:
            outcomes[cid] = ("processed", "duplicate_idempotency_key")
            continue
        elif user not in users:
            reason = "unknown_user"
        elif kind == "config_atualizada":
            reason = None
        elif kind == "assinatura_criada":
            reason = "subscription_already_active" if active else None
        elif not active:
            reason = "subscription_cancelled" if user in current else "no_subscription"
        else:
            reason = None
        outcomes[cid] = ("rejected", reason) if reason else ("processed", None)
        if reason:
            continue
        if kind.startswith("assinatura_"):
            previous = current.get(user)
            version = {
                "user_id": user,
                "status": "cancelada" if kind == "assinatura_cancelada" else "ativa",
                "plano": previous["plano"] if kind == "assinatura_cancelada" else payload["plano"],
                "valor_mensal": (
                    previous["valor_mensal"]
                    if kind == "assinatura_cancelada"
                    else Decimal(payload["valor_mensal"])
                ),
                "valid_from": _ts(c),
                "valid_to": None,
            }
            if previous is not None:
                previous["valid_to"] = _ts(c)
            current[user] = version
            history.append(version)
        elif kind == "pagamento_registrado":
            payments[cid] = {
                "metodo": payload["metodo"],
                "status": payload["status"],
                "valor": Decimal(payload["valor"]),
            }
            if key:
                recorded_keys[key] = cid
    return {
        "outcomes": outcomes,
        "history": history,
        "users": users,
        "payments": payments,
        "active_by_plan": _active_by_plan(current),
        "payments_by_method": _payments_by_method(payments),
        "users_new_daily": _users_daily(users),
        "mrr_monthly": _mrr_monthly(history),
    }


def _active_by_plan(current: dict[str, dict[str, Any]]) -> dict[str, tuple[int, Decimal]]:
    out: dict[str, tuple[int, Decimal]] = {}
    for version in current.values():
        if version["status"] == "ativa":
            n, mrr = out.get(version["plano"], (0, Decimal(0)))
            out[version["plano"]] = (n + 1, mrr + version["valor_mensal"])
    return out


def _payments_by_method(payments: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int, int, Decimal]]:
    out: dict[str, tuple[int, int, int, Decimal]] = {}
    for p in payments.values():
        n, ok, failed, amount = out.get(p["metodo"], (0, 0, 0, Decimal(0)))
        approved = p["status"] == "aprovado"
        out[p["metodo"]] = (
            n + 1,
            ok + approved,
            failed + (not approved),
            amount + (p["valor"] if approved else 0),
        )
    return out


def _users_daily(users: dict[str, datetime]) -> dict[str, tuple[int, int]]:
    days: dict[str, int] = {}
    for created in users.values():
        days[created.date().isoformat()] = days.get(created.date().isoformat(), 0) + 1
    total, out = 0, {}
    for day in sorted(days):
        total += days[day]
        out[day] = (days[day], total)
    return out


def _mrr_monthly(history: list[dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """End-of-month MRR per subscriber, and its movement between consecutive months."""
    if not history:
        return {}
    month = _month_start(min(v["valid_from"] for v in history))
    last = _month_start(max(v["valid_from"] for v in history))
    subscribers = {v["user_id"] for v in history}
    previous = dict.fromkeys(subscribers, Decimal(0))
    out: dict[str, dict[str, Decimal]] = {}
    while month <= last:
        end = _next_month(month)
        now = dict.fromkeys(subscribers, Decimal(0))
        for v in history:
            if (
                v["status"] == "ativa"
                and v["valid_from"] < end
                and (v["valid_to"] is None or v["valid_to"] >= end)
            ):
                now[v["user_id"]] += v["valor_mensal"]
        row = dict.fromkeys(["new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr"], Decimal(0))
        for user in subscribers:
            before, after = previous[user], now[user]
            if before == 0 and after > 0:
                row["new_mrr"] += after
            elif before > 0 and after > before:
                row["expansion_mrr"] += after - before
            elif after > 0 and after < before:
                row["contraction_mrr"] += before - after
            elif before > 0 and after == 0:
                row["churned_mrr"] += before
        row["mrr"] = sum(now.values(), Decimal(0))
        row["active_subscriptions"] = Decimal(sum(1 for v in now.values() if v > 0))
        out[month.date().isoformat()] = row
        previous, month = now, end
    return out
