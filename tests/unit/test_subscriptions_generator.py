"""The subscriptions command generator: envelopes the command API would produce, determinism by seed,
an exact malformed share, and a stream consistent over time (replayed against a small reference of the
business rules: who exists, who is subscribed to what at which price)."""

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from api.commands import correlation_id_for, new_user_id
from api.routers.subscriptions import Assinatura, Config, NovoUsuario, Pagamento
from assets.subscriptions.decode import decode_commands
from generators.messages import DEFECTS, GeneratedEvent
from generators.subscriptions import EVENT_TYPES, PLANS, generate_commands, main

END = dt.datetime(2024, 6, 1)
MAX_BYTES = 64 * 1024  # the Kafka topic source's default max_message_bytes
# event type -> (API request model, the request body that produced the payload)
REQUESTS: dict[str, tuple[Any, Any]] = {
    "usuario_criado": (NovoUsuario, lambda p: p),
    "assinatura_criada": (Assinatura, lambda p: {"acao": "criar", **p}),
    "assinatura_alterada": (Assinatura, lambda p: {"acao": "alterar", **p}),
    "assinatura_cancelada": (Assinatura, lambda p: {"acao": "cancelar", **p}),
    "pagamento_registrado": (Pagamento, lambda p: p),
    "config_atualizada": (Config, lambda p: p),
}


def _commands(**kwargs: Any) -> list[GeneratedEvent]:
    return list(generate_commands(**{"users": 400, "days": 90, "seed": 5, "end": END, **kwargs}))


def _as_the_api_dumps(event: dict[str, Any]) -> dict[str, Any]:
    """The payload the API would put in the event for the request this command stands for."""
    model, body = REQUESTS[event["event_type"]]
    request = TypeAdapter(model).validate_python(body(event["payload"]))
    # The router drops ``acao`` from a subscription command: the event type says what to do.
    return request.model_dump(mode="json", exclude={"acao"} if model is Assinatura else None)


def _is_valid_envelope(value: bytes) -> bool:
    """What any decoder of the envelope must accept (and nothing else)."""
    if len(value) > MAX_BYTES:
        return False
    try:
        event = json.loads(value)
        assert isinstance(event, dict)
        assert all(isinstance(event.get(f), str) for f in ("event_id", "correlation_id", "user_id"))
        assert event["event_type"] in EVENT_TYPES and isinstance(event["payload"], dict)
        dt.datetime.fromisoformat(event["occurred_at"])
        _as_the_api_dumps(event)
    except (ValueError, AssertionError, KeyError, TypeError, ValidationError):
        return False
    return True


def test_every_message_is_an_envelope_the_command_api_would_produce() -> None:
    items = _commands()
    assert {i.event["event_type"] for i in items} == set(EVENT_TYPES)
    for item in items:
        event = item.event
        assert item.key == event["user_id"] and json.loads(item.value) == event
        assert event["event_id"] == event["correlation_id"]
        assert event["occurred_at"].endswith("Z")
        assert _as_the_api_dumps(event) == event["payload"], event
        key = event["idempotency_key"]
        if event["event_type"] == "usuario_criado":  # ids derived exactly as the API derives them
            assert event["user_id"] == new_user_id(key)
            assert event["correlation_id"] == correlation_id_for("POST /usuarios", event["user_id"], key)
        if event["event_type"] == "pagamento_registrado":
            route = "POST /usuarios/{id}/pagamento"
            assert event["correlation_id"] == correlation_id_for(route, event["user_id"], key)


def test_same_seed_same_messages_other_seed_others() -> None:
    first = [i.value for i in _commands(bad_share=0.02)]
    assert first == [i.value for i in _commands(bad_share=0.02)]
    assert first != [i.value for i in _commands(bad_share=0.02, seed=6)]
    # More users add users; the first users' lives do not change.
    base = {i.event["user_id"] for i in _commands(users=50) if i.event["event_type"] == "usuario_criado"}
    more = {i.event["user_id"] for i in _commands(users=80) if i.event["event_type"] == "usuario_criado"}
    assert base < more


def test_exact_malformed_share_on_top_of_the_valid_stream() -> None:
    clean = _commands()
    items = _commands(bad_share=0.05)
    bad = [i for i in items if not i.valid]
    # share of all messages: bad / (valid + bad) = 0.05, rounded
    assert len(bad) == round(len(clean) * 0.05 / 0.95) and len(bad) > 50
    assert Counter(i.bad_kind for i in bad).keys() == set(DEFECTS)
    assert [i.value for i in items if i.valid] == [i.value for i in clean]  # valid stream unchanged
    assert all(_is_valid_envelope(i.value) for i in items if i.valid)
    assert not any(_is_valid_envelope(i.value) for i in bad)
    with pytest.raises(ValueError):
        next(generate_commands(users=5, bad_share=1.0))


def test_the_domain_decoder_dead_letters_exactly_the_malformed_messages() -> None:
    items = _commands(bad_share=0.05)
    decoded = decode_commands([i.value for i in items])
    assert list(decoded.dead_rows) == [n for n, i in enumerate(items) if not i.valid]
    assert decoded.events.num_rows == sum(i.valid for i in items)
    reasons = {reason.split(":")[0] for reason in decoded.dead_reasons}
    assert {"invalid_json", "missing_field", "wrong_type", "unknown_event_type"} <= reasons


def test_commands_are_consistent_over_time_and_rejections_exist() -> None:
    """Replay: a user exists before any command of theirs, a subscription before its changes, payments
    of active subscriptions cost the current plan; the exceptions are exactly the intended rejections."""
    users: set[str] = set()
    plan: dict[str, str | None] = {}  # user -> current plan (None: cancelled)
    seen: dict[str, dict[str, Any]] = {}
    outcomes: Counter[str] = Counter()
    last: dict[str, str] = {}
    items = _commands(users=2000)  # rare paths too (a cancellation due after the window's end)
    stamps = [i.event["occurred_at"] for i in items]
    assert stamps == sorted(stamps) and stamps[0] >= "2024-03-03" and stamps[-1] < "2024-06-01"
    for item in items:
        event, user = item.event, item.event["user_id"]
        assert event["occurred_at"] >= last.get(user, "")  # one user's commands in order (same key)
        last[user] = event["occurred_at"]
        kind, cid = event["event_type"], event["correlation_id"]
        if cid in seen:  # a retry with the same key: the same command again
            assert {**seen[cid], "occurred_at": None} == {**event, "occurred_at": None}
            assert event["idempotency_key"] is not None
            outcomes["duplicate " + kind] += 1
            continue
        seen[cid] = event
        if kind == "usuario_criado":
            assert user not in users
            users.add(user)
            continue
        if kind == "pagamento_registrado" and user not in users:
            assert user.startswith("desconhecido-")
            outcomes["payment of an unknown user"] += 1
            continue
        assert user in users, event
        if kind == "assinatura_criada":
            assert plan.get(user) is None
            plan[user] = event["payload"]["plano"]
        elif kind == "assinatura_alterada":
            assert plan[user] not in (None, event["payload"]["plano"])
            plan[user] = event["payload"]["plano"]
        elif kind == "assinatura_cancelada":
            assert plan[user] is not None
            plan[user] = None
        elif kind == "pagamento_registrado":
            if plan.get(user) is None:
                assert user in plan  # charged after the cancellation, never before subscribing
                outcomes["payment after cancellation"] += 1
            else:
                assert event["payload"]["valor"] == PLANS[plan[user]]
                outcomes["payment " + event["payload"]["status"]] += 1
        outcomes[kind] += 1
    for expected in (
        "duplicate pagamento_registrado",
        "payment of an unknown user",
        "payment after cancellation",
        "payment recusado",
        "assinatura_alterada",
        "assinatura_cancelada",
        "config_atualizada",
    ):
        assert outcomes[expected] > 0, (expected, outcomes)
    assert outcomes["payment aprovado"] > 0.85 * (outcomes["payment aprovado"] + outcomes["payment recusado"])
    resubscribed = Counter(e["user_id"] for e in seen.values() if e["event_type"] == "assinatura_criada")
    assert max(resubscribed.values()) >= 2  # some come back after cancelling (history for SCD2)


def test_cli_writes_files_over_the_last_days(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    args = ["--users", "120", "--days", "10", "--out", str(tmp_path), "--files", "3", "--no-progress"]
    assert main([*args, "--bad-share", "0.02"]) == 0
    out = capsys.readouterr().out
    paths = sorted(tmp_path.glob("user_events_*.jsonl"))
    lines = [line for p in paths for line in p.read_text().splitlines()]
    assert len(paths) == 3 and not list(tmp_path.glob("*.part"))
    events = [json.loads(line) for line in lines if _is_valid_envelope(line.encode())]
    assert f"sent {len(lines)} events ({len(lines) - len(events)} malformed" in out
    assert len(lines) - len(events) == round(len(events) * 0.02 / 0.98) > 0
    stamps = sorted(dt.datetime.fromisoformat(e["occurred_at"]).replace(tzinfo=None) for e in events)
    assert started - dt.timedelta(days=10) <= stamps[0] < started - dt.timedelta(days=8)
    assert stamps[-1] <= dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert len({s.date() for s in stamps}) >= 9
    for bad in (["--bad-share", "1"], ["--users", "0"], ["--days", "0"], ["--kafka", "127.0.0.1:9092"]):
        with pytest.raises(SystemExit):
            main([*args, *bad])
    with pytest.raises(SystemExit):
        main(["--users", "5"])  # no sink
