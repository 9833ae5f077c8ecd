"""The subscriptions command API on real Kafka (and /status on DuckDB and PostgreSQL).

Every command is read back from the topic: exactly one event, keyed by user id, with the envelope
processing decodes. Kafka down is a real closed port, not a mock.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient

from api.app import create_app
from api.commands import correlation_id_for, store_from_settings
from bench.api_load import serve
from resources.warehouse import WarehouseResource

USER = "u-42"
COMMANDS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    # (path, body, event_type, payload in the event)
    ("/usuarios", {"nome": "Ana Souza", "email": "ana@example.com"}, "usuario_criado",
     {"nome": "Ana Souza", "email": "ana@example.com"}),
    (f"/usuarios/{USER}/assinatura", {"plano": "premium", "valor_mensal": "39.90"}, "assinatura_criada",
     {"plano": "premium", "valor_mensal": "39.90"}),
    (f"/usuarios/{USER}/assinatura", {"acao": "alterar", "plano": "basico", "valor_mensal": 19.9},
     "assinatura_alterada", {"plano": "basico", "valor_mensal": "19.90"}),
    (f"/usuarios/{USER}/assinatura", {"acao": "cancelar"}, "assinatura_cancelada", {}),
    (f"/usuarios/{USER}/pagamento", {"valor": 39.9, "metodo": "pix"}, "pagamento_registrado",
     {"valor": "39.90", "metodo": "pix", "status": "aprovado"}),
    (f"/usuarios/{USER}/pagamento", {"valor": "0.07", "metodo": "boleto", "status": "recusado"},
     "pagamento_registrado", {"valor": "0.07", "metodo": "boleto", "status": "recusado"}),
    (f"/usuarios/{USER}/config", {"preferencias": {"tema": "escuro", "notificacoes": True}},
     "config_atualizada", {"preferencias": {"tema": "escuro", "notificacoes": True}}),
]  # fmt: skip


@pytest.fixture
def commands_env(kafka_server, kafka_topic: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_server.url)
    monkeypatch.setenv("SUBSCRIPTIONS_COMMANDS_TOPIC", kafka_topic)
    monkeypatch.setenv("API_AUTH", "false")
    return kafka_topic


@pytest.fixture
def client(commands_env: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(f"duckdb:///{tmp_path / 'w.duckdb'}")) as test_client:
        yield test_client


def _bus(client: TestClient) -> Any:
    """The app's CommandBus (its Kafka sink and LRU are inspected)."""
    return client.app.state.subscription_commands  # type: ignore[attr-defined]


def consume(bootstrap: str, topic: str, settle_s: float = 1.5, timeout_s: float = 20.0) -> list[Any]:
    """Every message of ``topic`` (all partitions, from the start), once nothing more arrives for a while."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-reader", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages, deadline, idle_since = [], time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - idle_since < settle_s:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
                idle_since = time.monotonic()
        return messages
    finally:
        consumer.close()


def test_each_command_produces_exactly_one_event_keyed_by_user(client: TestClient, kafka_server) -> None:
    answers = []
    for path, body, event_type, _ in COMMANDS:
        answer = client.post(path, json=body)
        assert answer.status_code == 202, answer.text
        got = answer.json()
        assert got["status"] == "accepted" and got["event_type"] == event_type
        UUID(got["correlation_id"])
        answers.append(got)
    assert answers[0]["user_id"] != USER and all(a["user_id"] == USER for a in answers[1:])
    # The /v1 home answers the same way.
    v1 = client.post(
        f"/v1/subscriptions/usuarios/{USER}/pagamento", json={"valor": "1.00", "metodo": "boleto"}
    )
    assert v1.status_code == 202, v1.text

    messages = consume(kafka_server.url, _bus(client).sink.topic)
    assert len(messages) == len(COMMANDS) + 1
    by_id = {json.loads(m.value())["correlation_id"]: m for m in messages}
    for answer, (_, _, event_type, payload) in zip(answers, COMMANDS, strict=True):
        message = by_id[answer["correlation_id"]]
        event = json.loads(message.value())
        assert message.key().decode() == answer["user_id"]
        assert set(event) == {
            "event_id", "correlation_id", "event_type", "user_id", "occurred_at", "idempotency_key", "payload"
        }  # fmt: skip
        assert event["event_id"] == event["correlation_id"] == answer["correlation_id"]
        assert (event["event_type"], event["user_id"], event["payload"]) == (
            event_type,
            answer["user_id"],
            payload,
        )
        assert event["idempotency_key"] is None and event["occurred_at"].endswith("Z")
        assert dict(message.headers())["event_type"] == event_type.encode()
    # One user's commands share a key, hence a partition: their order is kept.
    assert len({m.partition() for m in messages if m.key() == USER.encode()}) == 1


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/usuarios", {"nome": "Ana"}, {}),  # email missing
        ("/usuarios", {"nome": "Ana", "email": "not-an-email"}, {}),
        ("/usuarios", {"nome": "Ana", "email": "a@b.co", "admin": True}, {}),  # unknown field
        ("/usuarios", {"nome": "   ", "email": "a@b.co"}, {}),
        (f"/usuarios/{USER}/assinatura", {"plano": "premium"}, {}),  # price missing to create
        (f"/usuarios/{USER}/assinatura", {"plano": "premium", "valor_mensal": "-1.00"}, {}),
        (f"/usuarios/{USER}/assinatura", {"acao": "pausar"}, {}),
        (f"/usuarios/{USER}/pagamento", {"valor": "10.005", "metodo": "pix"}, {}),  # 3 decimals
        (f"/usuarios/{USER}/pagamento", {"valor": "10.00", "metodo": "cheque"}, {}),
        (f"/usuarios/{USER}/pagamento", {"valor": 10.005, "metodo": "pix"}, {}),
        (f"/usuarios/{USER}/pagamento", {"valor": "1e3", "metodo": "pix"}, {}),  # not a plain decimal
        (f"/usuarios/{USER}/pagamento", {"valor": "0.00", "metodo": "pix"}, {}),
        (f"/usuarios/{USER}/pagamento", {"valor": True, "metodo": "pix"}, {}),
        (f"/usuarios/{USER}/assinatura", {"acao": "cancelar", "plano": "premium"}, {}),
        (f"/usuarios/{USER}/config", {"preferencias": {}}, {}),
        (f"/usuarios/{USER}/config", {"preferencias": {"tema": {"nested": 1}}}, {}),
        ("/usuarios/bad%20id/config", {"preferencias": {"tema": "claro"}}, {}),
        ("/usuarios", {"nome": "Ana", "email": "a@b.co"}, {"Idempotency-Key": "has space"}),
    ],
)  # fmt: skip
def test_invalid_commands_are_422_and_produce_nothing(
    client: TestClient, kafka_server, commands_env: str, path: str, body: dict, headers: dict
) -> None:
    answer = client.post(path, json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"]
    assert consume(kafka_server.url, commands_env, settle_s=0.5) == []


def test_idempotent_retry_returns_the_same_correlation_id_and_produces_once(
    client: TestClient, kafka_server, commands_env: str, tmp_path: Path
) -> None:
    body = {"valor": "59.90", "metodo": "cartao_credito"}
    path = f"/usuarios/{USER}/pagamento"
    first = client.post(path, json=body, headers={"Idempotency-Key": "pay-1"}).json()
    again = client.post(path, json=body, headers={"Idempotency-Key": "pay-1"}).json()
    assert first["correlation_id"] == again["correlation_id"]
    # Concurrent retries in one process wait for the first attempt instead of producing again.
    with ThreadPoolExecutor(8) as pool:
        racing = list(
            pool.map(lambda _: client.post(path, json=body, headers={"Idempotency-Key": "pay-2"}), range(8))
        )
    assert {r.status_code for r in racing} == {202}
    assert len({r.json()["correlation_id"] for r in racing}) == 1
    # A retried user creation names the same user.
    bia = {"nome": "Bia", "email": "b@x.io"}
    created = [client.post("/usuarios", json=bia, headers={"Idempotency-Key": "u-1"}) for _ in range(2)]
    assert created[0].json() == created[1].json()
    # The same key for another request is refused, and produces nothing.
    other = client.post(path, json={**body, "valor": "1.00"}, headers={"Idempotency-Key": "pay-1"})
    assert other.status_code == 409 and "different request" in other.text

    events = [json.loads(m.value()) for m in consume(kafka_server.url, commands_env)]
    assert len(events) == 3
    keyed = {e["idempotency_key"]: e for e in events}
    assert keyed["pay-1"]["correlation_id"] == first["correlation_id"]
    assert keyed["u-1"]["user_id"] == created[0].json()["user_id"]

    # Another worker (a fresh app: its own memory, the same warehouse) finds the command in the shared
    # idempotency store: same correlation id, no second event; another request under the key is 409.
    with TestClient(create_app(f"duckdb:///{tmp_path / 'w.duckdb'}")) as other_worker:
        elsewhere = other_worker.post(path, json=body, headers={"Idempotency-Key": "pay-1"})
        refused = other_worker.post(
            path, json={**body, "valor": "2.00"}, headers={"Idempotency-Key": "pay-1"}
        )
    assert elsewhere.status_code == 202 and elsewhere.json()["correlation_id"] == first["correlation_id"]
    assert refused.status_code == 409
    events = [json.loads(m.value()) for m in consume(kafka_server.url, commands_env)]
    assert [e["correlation_id"] for e in events].count(first["correlation_id"]) == 1 and len(events) == 3


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kafka_down_answers_503_not_500(
    commands_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS", "1500")
    with TestClient(create_app(f"duckdb:///{tmp_path / 'w.duckdb'}")) as client:
        started = time.monotonic()
        answer = client.post(f"/usuarios/{USER}/config", json={"preferencias": {"tema": "claro"}})
        elapsed = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert "Kafka unavailable" in answer.json()["detail"] and answer.headers["retry-after"] == "5"
        assert 1.0 < elapsed < 5.0  # bounded by SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS, not hanging
        # Nothing was accepted, so the command is unknown and a retry with a key is not "replayed".
        keyed = client.post(
            "/usuarios", json={"nome": "C", "email": "c@x.io"}, headers={"Idempotency-Key": "k"}
        )
        assert keyed.status_code == 503
        assert not _bus(client).recent._entries
        # The failed attempt released its reservation: the retry tries Kafka at once (its own timeout),
        # it does not wait out SUBSCRIPTIONS_IDEMPOTENCY_TAKEOVER_SECONDS (10 s) for a takeover.
        started = time.monotonic()
        retried = client.post(
            "/usuarios", json={"nome": "C", "email": "c@x.io"}, headers={"Idempotency-Key": "k"}
        )
        assert retried.status_code == 503 and "Kafka unavailable" in retried.json()["detail"]
        assert time.monotonic() - started < 5.0
    assert _bus(client).sink._producer is None  # closed at shutdown


def test_status_accepted_processed_rejected_or_404(
    commands_env: str, warehouse_url: str, kafka_server
) -> None:
    with TestClient(create_app(warehouse_url)) as client:
        unknown = "0b7f5d1e-3c2a-4e8f-9d6b-5a4c3b2a1f00"
        assert client.get(f"/status/{unknown}").status_code == 404
        # Just produced by this process: accepted before any table exists.
        cid = client.post(f"/usuarios/{USER}/config", json={"preferencias": {"tema": "claro"}}).json()[
            "correlation_id"
        ]
        assert client.get(f"/status/{cid}").json() == {
            "correlation_id": cid, "status": "accepted", "reason": None, "row_ids": None
        }  # fmt: skip
        assert client.get(f"/v1/subscriptions/status/{cid}").json()["status"] == "accepted"

    # Another process's commands: known through raw.user_events, decided in stg.command_outcomes.
    ingested, processed, rejected = (
        "1a0f5d1e-3c2a-4e8f-9d6b-5a4c3b2a1f01", "2a0f5d1e-3c2a-4e8f-9d6b-5a4c3b2a1f02",
        "3a0f5d1e-3c2a-4e8f-9d6b-5a4c3b2a1f03",
    )  # fmt: skip
    with WarehouseResource(url=warehouse_url).begin() as conn:
        for ddl in (
            "CREATE SCHEMA IF NOT EXISTS raw",
            "CREATE SCHEMA IF NOT EXISTS stg",
            "CREATE TABLE raw.user_events (event_id TEXT, correlation_id TEXT, user_id TEXT)",
            "CREATE TABLE stg.command_outcomes (correlation_id TEXT, status TEXT, reason TEXT, row_ids TEXT)",
        ):
            conn.execute(sa.text(ddl))
        conn.execute(
            sa.text("INSERT INTO raw.user_events VALUES (:c, :c, 'u-1')"),
            [{"c": ingested}, {"c": processed}, {"c": rejected}],
        )
        conn.execute(
            sa.text("INSERT INTO stg.command_outcomes VALUES (:c, :s, :r, :ids)"),
            [
                {
                    "c": processed,
                    "s": "processed",
                    "r": None,
                    "ids": '{"pagamentos": ["p-9"], "assinaturas": [7]}',
                },
                {"c": rejected, "s": "rejected", "r": "unknown user u-1", "ids": None},
            ],
        )
    with TestClient(create_app(warehouse_url)) as client:
        assert client.get(f"/status/{ingested}").json()["status"] == "accepted"
        assert client.get(f"/status/{processed}").json() == {
            "correlation_id": processed, "status": "processed", "reason": None,
            "row_ids": {"pagamentos": ["p-9"], "assinaturas": ["7"]},
        }  # fmt: skip
        assert client.get(f"/status/{rejected}").json() == {
            "correlation_id": rejected, "status": "rejected", "reason": "unknown user u-1", "row_ids": None
        }  # fmt: skip
        assert client.get(f"/status/{unknown}").status_code == 404


def test_status_knows_a_keyed_command_another_worker_produced(
    commands_env: str, warehouse_url: str, kafka_server
) -> None:
    """Worker A produces a keyed command; worker B (another app: its own memory, the same warehouse,
    hence the same shared idempotency store) answers ``accepted`` before the event reaches
    ``raw.user_events``. A reservation still pending (not produced yet) is not a command yet."""
    path = f"/usuarios/{USER}/pagamento"
    body = {"valor": "9.90", "metodo": "pix"}
    with TestClient(create_app(warehouse_url)) as worker_a:
        cid = worker_a.post(path, json=body, headers={"Idempotency-Key": "st-1"}).json()["correlation_id"]
    pending = correlation_id_for("POST /usuarios/{id}/pagamento", USER, "st-2")
    store = store_from_settings(warehouse_url)  # a third worker, between reserving and producing
    asyncio.run(_reserve_and_close(store, pending))
    with TestClient(create_app(warehouse_url)) as worker_b:
        assert not _bus(worker_b).produced_recently(cid)
        assert worker_b.get(f"/status/{cid}").json() == {
            "correlation_id": cid, "status": "accepted", "reason": None, "row_ids": None
        }  # fmt: skip
        assert worker_b.get(f"/status/{pending}").status_code == 404


async def _reserve_and_close(store: Any, correlation_id: str) -> None:
    try:
        assert not (await store.reserve(correlation_id, "fp")).produced
    finally:
        await store.aclose()


def test_openapi_documents_the_command_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/usuarios", "/usuarios/{user_id}/assinatura", "/usuarios/{user_id}/pagamento",
                 "/usuarios/{user_id}/config", "/v1/subscriptions/usuarios"):  # fmt: skip
        operation = spec["paths"][path]["post"]
        assert {"202", "409", "422", "503"} <= set(operation["responses"]), path
        assert "Kafka" in operation["responses"]["503"]["description"]
        assert "CommandAccepted" in json.dumps(operation["responses"]["202"])
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"])
    assert spec["components"]["schemas"]["Pagamento"]["additionalProperties"] is False
    status = spec["paths"]["/status/{correlation_id}"]["get"]
    assert {"200", "404", "422"} <= set(status["responses"])


def _post(base: str, path: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    """One POST on its own connection (so the kernel may hand it to either worker)."""
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _replaying_pids(log_file: Path, correlation_id: str) -> set[int]:
    """The worker processes that logged answering a retry of ``correlation_id`` without producing."""
    if not log_file.exists():
        return set()
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("correlation_id") == correlation_id and "pid" in line}


def test_a_keyed_retry_reaching_any_of_two_worker_processes_produces_one_event(
    commands_env: str, warehouse_url: str, kafka_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``python -m api`` with 2 uvicorn worker processes over a real socket (DuckDB: the workers share a
    SQLite file; PostgreSQL: ops.command_idempotency): the same command with the same key, concurrently
    and one after another, is answered 202 with one correlation id by both workers (seen in their
    replay log lines, which carry the pid) and is ONE event on the topic."""
    log_file = tmp_path / "api.jsonl"
    monkeypatch.setenv("AFLUENTE_LOG_FILE", str(log_file))
    monkeypatch.setenv("API_LOG_LEVEL", "INFO")
    path, body, key = f"/usuarios/{USER}/pagamento", {"valor": "12.30", "metodo": "pix"}, "pay-multi"
    process, base = serve(warehouse_url, False, 2)
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: _post(base, path, body, key), range(20)))
        answers += [_post(base, path, body, key) for _ in range(20)]
        correlation_id = answers[0][1]["correlation_id"]
        # Connections are spread over the workers by the kernel: keep retrying (bounded) until both
        # have answered, so the assertion below does not depend on luck.
        while len(_replaying_pids(log_file, correlation_id)) < 2 and len(answers) < 300:
            answers.append(_post(base, path, body, key))
            time.sleep(0.01)
        conflict = _post(base, path, {**body, "valor": "99.00"}, key)
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert {status for status, _ in answers} == {202}
    assert {answer["correlation_id"] for _, answer in answers} == {correlation_id}
    events = [json.loads(m.value()) for m in consume(kafka_server.url, commands_env)]
    assert [e["correlation_id"] for e in events] == [correlation_id]  # exactly one event, nothing else
    assert conflict[0] == 409 and "different request" in conflict[1]["detail"]
    assert len(_replaying_pids(log_file, correlation_id)) == 2, "only one worker answered"


def test_keyless_commands_never_touch_the_idempotency_store(
    commands_env: str, kafka_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The store is unusable (its SQLite path is a directory): keyless commands are still accepted,
    keyed ones are refused with 503 (nothing produced) rather than risking a duplicate."""
    (tmp_path / "not-a-file").mkdir()
    monkeypatch.setenv("SUBSCRIPTIONS_IDEMPOTENCY_SQLITE_PATH", str(tmp_path / "not-a-file"))
    body = {"preferencias": {"tema": "claro"}}
    with TestClient(create_app(f"duckdb:///{tmp_path / 'w.duckdb'}")) as client:
        keyless = client.post(f"/usuarios/{USER}/config", json=body)
        keyed = client.post(f"/usuarios/{USER}/config", json=body, headers={"Idempotency-Key": "cfg-1"})
    assert keyless.status_code == 202, keyless.text
    assert keyed.status_code == 503 and "idempotency store unavailable" in keyed.json()["detail"]
    assert keyed.headers["retry-after"] == "2"
    events = [json.loads(m.value()) for m in consume(kafka_server.url, commands_env)]
    assert [e["correlation_id"] for e in events] == [keyless.json()["correlation_id"]]
