"""Subscriptions processing end to end on real Kafka, both warehouses: commands -> outcomes -> marts.

Command envelopes (as the command API produces them) go to a real topic; the declared Kafka source's
offsets sensor and ingest job load them (in process, as the daemon would run them), the SQL models
apply the business rules, and the outcomes are published to the response topic. Everything the
models produce is compared with :mod:`tests.integration.subscriptions_reference`, which replays the
same commands with a plain Python state machine.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    SensorResult,
    build_sensor_context,
    materialize,
)
from fastapi.testclient import TestClient

from api.app import create_app
from assets.sources.kafka_topic._ledger import OffsetRange
from assets.subscriptions.responses import publish_outcomes, response_events
from assets.subscriptions.tables import user_events_source
from dbt_like_sql import build_sql_model_assets, load_project
from orchestration.declared import declared
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource
from tests.integration.subscriptions_reference import Scenario, expected, scenario

REPO = Path(__file__).resolve().parents[2]
MODELS = [
    a
    for a in build_sql_model_assets(load_project())
    if any(k.path[0] in ("stg", "mart") for k in a.keys)
    and a.group_names_by_key[next(iter(a.keys))] == "subscriptions"
]


@pytest.fixture
def topics(
    kafka: KafkaResource, kafka_topic: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """Fresh commands and responses topics, set as SUBSCRIPTIONS_COMMANDS_TOPIC / _RESPONSES_TOPIC."""
    responses = f"{kafka_topic}.responses"
    kafka.create_topic(responses, partitions=2)
    monkeypatch.setenv("SUBSCRIPTIONS_COMMANDS_TOPIC", kafka_topic)
    monkeypatch.setenv("SUBSCRIPTIONS_RESPONSES_TOPIC", responses)
    try:
        yield kafka_topic, responses
    finally:
        kafka.delete_topic(responses)


def _produce(kafka: KafkaResource, topic: str, s: Scenario) -> None:
    producer = kafka.producer()
    for command in s.commands:  # keyed by user id, as the command API does
        producer.send(topic, json.dumps(command).encode(), key=command["user_id"].encode())
    for value, _ in s.malformed:
        producer.send(topic, value, key=b"bad")
    producer.flush()
    producer.close()


def _graph(resources: dict) -> Definitions:
    return Definitions.merge(
        declared("subscriptions/user_events"),
        Definitions(assets=[*MODELS, response_events], resources=resources),
    )


def _ingest_all(instance: DagsterInstance, resources: dict) -> int:
    """Tick the declared offsets sensor and run every request it makes; returns the runs launched."""
    defs = _graph(resources)
    sensor = defs.resolve_sensor_def(user_events_source().sensor_name)
    job = defs.resolve_job_def(user_events_source().ingest_job_name)
    result = sensor(build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, SensorResult), result
    for request in result.run_requests or []:
        assert job.execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags
        ).success
    return len(result.run_requests or [])


def _build(instance: DagsterInstance, resources: dict) -> None:
    """The models with their data tests, then the publisher."""
    built = materialize(
        [*MODELS, response_events],
        selection=AssetSelection.assets(*[k for a in MODELS for k in a.keys]),
        instance=instance,
        resources=resources,
    )
    assert built.success
    failed = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in built.get_asset_check_evaluations()
        if not e.passed
    ]
    assert failed == []
    assert materialize([response_events], instance=instance, resources=resources).success


def _rows(warehouse: WarehouseResource, sql: str) -> list[dict[str, Any]]:
    with warehouse.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text(sql))]


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _consume_all(kafka: KafkaResource, topic: str) -> list[dict[str, Any]]:
    consumer = kafka.consumer(topic, consumer_timeout_ms=5000, group_id=None)
    try:
        return [json.loads(m.value) | {"_key": m.key.decode()} for m in consumer]
    finally:
        consumer.close()


def _assert_matches_reference(warehouse: WarehouseResource, s: Scenario) -> dict[str, Any]:
    want = expected(s.commands)
    outcomes = {r["correlation_id"]: r for r in _rows(warehouse, "SELECT * FROM stg.command_outcomes")}
    assert {cid: (r["status"], r["reason"]) for cid, r in outcomes.items()} == want["outcomes"]

    history = _rows(
        warehouse,
        "SELECT user_id, status, plano, valor_mensal, valid_from, valid_to, is_current "
        "FROM stg.assinaturas_historico ORDER BY user_id, valid_from",
    )
    got = [
        (h["user_id"], h["status"], h["plano"], _money(h["valor_mensal"]), h["valid_from"],
         h["valid_to"])
        for h in history
    ]  # fmt: skip
    assert got == [
        (v["user_id"], v["status"], v["plano"], v["valor_mensal"], v["valid_from"], v["valid_to"])
        for v in sorted(want["history"], key=lambda v: (v["user_id"], v["valid_from"]))
    ]
    assert sorted(r["user_id"] for r in _rows(warehouse, "SELECT user_id FROM stg.usuarios")) == sorted(
        want["users"]
    )
    assert sorted(
        r["pagamento_id"] for r in _rows(warehouse, "SELECT pagamento_id FROM stg.pagamentos")
    ) == sorted(want["payments"])

    active = _rows(
        warehouse, "SELECT plano, active_subscriptions, mrr FROM mart.subscriptions_active_by_plan"
    )
    assert {r["plano"]: (int(r["active_subscriptions"]), _money(r["mrr"])) for r in active} == want[
        "active_by_plan"
    ]
    methods = _rows(warehouse, "SELECT * FROM mart.payments_by_method")
    assert {
        r["metodo"]: (
            int(r["payments"]),
            int(r["succeeded"]),
            int(r["failed"]),
            _money(r["amount_succeeded"]),
        )
        for r in methods
    } == want["payments_by_method"]
    for r in methods:
        assert float(r["success_rate_pct"]) == pytest.approx(100 * r["succeeded"] / r["payments"], abs=0.006)
    daily = _rows(warehouse, "SELECT signup_date, new_users, total_users FROM mart.users_new_daily")
    assert {str(r["signup_date"])[:10]: (int(r["new_users"]), int(r["total_users"])) for r in daily} == want[
        "users_new_daily"
    ]
    mrr = _rows(warehouse, "SELECT * FROM mart.subscriptions_mrr_monthly")
    columns = ["mrr", "active_subscriptions", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr"]
    assert {str(r["month"])[:10]: {c: _money(r[c]) for c in columns} for r in mrr} == {
        month: {c: _money(row[c]) for c in columns} for month, row in want["mrr_monthly"].items()
    }
    return want


def _assert_api(warehouse: WarehouseResource, want: dict[str, Any]) -> None:
    """The read endpoints (seed path and /v1) serve the marts: amounts as exact decimal strings."""
    with TestClient(create_app(warehouse.url)) as client:
        for base in ("/subscriptions/metrics", "/v1/subscriptions/metrics"):
            plans = client.get(f"{base}/active-by-plan")
            assert plans.status_code == 200, plans.text
            assert {p["plano"]: (p["active_subscriptions"], Decimal(p["mrr"])) for p in plans.json()} == want[
                "active_by_plan"
            ]
            months = client.get(f"{base}/mrr", params={"months": 120}).json()
            assert [m["month"] for m in months] == sorted(want["mrr_monthly"])
            assert [Decimal(m["churned_mrr"]) for m in months] == [
                want["mrr_monthly"][m]["churned_mrr"] for m in sorted(want["mrr_monthly"])
            ]
            assert all(isinstance(m["mrr"], str) for m in months)
            methods = client.get(f"{base}/payments-by-method").json()
            assert {m["metodo"]: (m["payments"], m["succeeded"], m["failed"]) for m in methods} == {
                k: v[:3] for k, v in want["payments_by_method"].items()
            }
            days = client.get(f"{base}/new-users", params={"days": 3660}).json()
            served = {d["signup_date"]: (d["new_users"], d["total_users"]) for d in days}
            assert served == want["users_new_daily"]


def test_metrics_endpoints_answer_503_before_the_marts_are_built(tmp_path: Path) -> None:
    with TestClient(create_app(f"duckdb:///{tmp_path / 'empty.duckdb'}")) as client:
        for path in ("active-by-plan", "mrr", "payments-by-method", "new-users"):
            response = client.get(f"/v1/subscriptions/metrics/{path}")
            assert response.status_code == 503, (path, response.text)
            assert "subscriptions" in response.json()["detail"] or "mart" in response.json()["detail"]


def test_commands_to_outcomes_state_marts_and_responses(
    kafka: KafkaResource, topics: tuple[str, str], warehouse: WarehouseResource, tmp_path: Path
) -> None:
    commands_topic, responses_topic = topics
    s = scenario()
    _produce(kafka, commands_topic, s)
    resources = {"warehouse": warehouse, "kafka": kafka}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    assert _ingest_all(instance, resources) >= 1
    assert _ingest_all(instance, resources) == 0  # everything is in the ledger

    dead = _rows(warehouse, "SELECT reason FROM raw.user_events_dead_letter")
    assert len(dead) == len(s.malformed)
    for (_, reason), row in zip(
        sorted(s.malformed, key=lambda m: m[1]), sorted(dead, key=lambda d: d["reason"]), strict=True
    ):
        assert row["reason"].startswith(reason), (row, reason)
    (raw,) = _rows(
        warehouse, "SELECT COUNT(*) AS n, COUNT(DISTINCT correlation_id) AS ids FROM raw.user_events"
    )
    assert raw["n"] == len(s.commands) and raw["ids"] == len(s.commands) - 1  # one message was sent twice

    _build(instance, resources)
    want = _assert_matches_reference(warehouse, s)
    _assert_api(warehouse, want)

    # The hand-written cases, spelled out.
    by_cid = {r["correlation_id"]: r for r in _rows(warehouse, "SELECT * FROM stg.command_outcomes")}
    first = {
        (c["event_type"], c["user_id"], c["payload"].get("plano")): c["correlation_id"]
        for c in reversed(s.commands)
    }
    ghost_payment = next(c for c in s.commands if c["user_id"] == "u-ghost")["correlation_id"]
    assert (by_cid[ghost_payment]["status"], by_cid[ghost_payment]["reason"]) == ("rejected", "unknown_user")
    ana_payments = [
        c["correlation_id"]
        for c in s.commands
        if c["user_id"] == "u-ana" and c["event_type"] == "pagamento_registrado"
    ]
    recorded, _, retried, after_cancel = ana_payments
    assert json.loads(by_cid[recorded]["row_ids"]) == {"pagamentos": [recorded]}
    assert (by_cid[retried]["status"], by_cid[retried]["reason"]) == (
        "processed",
        "duplicate_idempotency_key",
    )
    assert json.loads(by_cid[retried]["row_ids"]) == {"pagamentos": [recorded]}  # counted once
    assert (by_cid[after_cancel]["status"], by_cid[after_cancel]["reason"]) == (
        "rejected",
        "subscription_cancelled",
    )
    created = first[("assinatura_criada", "u-ana", "basico")]
    assert json.loads(by_cid[created]["row_ids"]) == {
        "assinaturas": [created],
        "assinaturas_historico": [created],
    }
    ana = _rows(
        warehouse,
        "SELECT change_type, status, plano, valor_mensal, is_current FROM stg.assinaturas_historico "
        "WHERE user_id = 'u-ana' ORDER BY valid_from",
    )
    versions = [
        (r["change_type"], r["status"], r["plano"], _money(r["valor_mensal"]), bool(r["is_current"]))
        for r in ana
    ]
    assert versions == [
        ("criada", "ativa", "basico", Decimal("29.90"), False),
        ("alterada", "ativa", "premium", Decimal("59.90"), False),
        ("cancelada", "cancelada", "premium", Decimal("59.90"), False),
        ("criada", "ativa", "basico", Decimal("29.90"), True),
    ]  # fmt: skip
    (pref,) = _rows(warehouse, "SELECT preferencias FROM stg.preferencias WHERE user_id = 'u-caio'")
    assert json.loads(pref["preferencias"]) == {"tema": "claro"}

    # One response per correlation_id, equal to the outcome; a second publication adds nothing.
    published = _consume_all(kafka, responses_topic)
    assert sorted(m["_key"] for m in published) == sorted(want["outcomes"])
    assert {m["correlation_id"]: (m["status"], m["reason"]) for m in published} == want["outcomes"]
    assert publish_outcomes(warehouse, kafka, responses_topic).published == 0
    assert len(_consume_all(kafka, responses_topic)) == len(want["outcomes"])


def test_publisher_that_lost_its_ledger_commit_publishes_nothing_twice(
    kafka: KafkaResource, topics: tuple[str, str], warehouse: WarehouseResource, tmp_path: Path
) -> None:
    commands_topic, responses_topic = topics
    s = scenario(random_users=5)
    _produce(kafka, commands_topic, s)
    resources = {"warehouse": warehouse, "kafka": kafka}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    _ingest_all(instance, resources)
    assert materialize(MODELS, instance=instance, resources=resources).success
    first = publish_outcomes(warehouse, kafka, responses_topic)
    n = len(expected(s.commands)["outcomes"])
    assert first.published == n
    # Kafka took the messages but the ledger commit is lost (a crash between the two).
    with warehouse.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ops.subscription_responses")
    again = publish_outcomes(warehouse, kafka, responses_topic)
    assert (again.recovered, again.published) == (n, 0)
    assert len(_consume_all(kafka, responses_topic)) == n


_KILLED_INGEST = textwrap.dedent(
    """
    import json, os, time
    from assets.subscriptions.decode import decode_commands
    from assets.subscriptions.tables import user_events_source
    from assets.sources.kafka_topic._asset import consumer_settings
    from assets.sources.kafka_topic._ingest import ingest_kafka_ranges
    from assets.sources.kafka_topic._ledger import OffsetRange
    from resources.kafka import KafkaResource
    from resources.warehouse import WarehouseResource

    kafka = KafkaResource(bootstrap_servers=os.environ["T_KAFKA"])

    def hold(result):
        print(f"BEFORE_COMMIT {result.events_loaded}", flush=True)
        time.sleep(600)

    ingest_kafka_ranges(
        consumer_factory=lambda: kafka.range_consumer(consumer_settings(5000)),
        warehouse=WarehouseResource(url=os.environ["T_WAREHOUSE"]),
        topic=os.environ["T_TOPIC"],
        ranges=[OffsetRange(*r) for r in json.loads(os.environ["T_RANGES"])],
        run_id="doomed",
        tables=user_events_source().tables,
        decoder=decode_commands,
        chunk_messages=50,
        before_commit=hold,
    )
    """
)


def test_processor_killed_mid_batch_loses_and_duplicates_nothing(
    kafka: KafkaResource, topics: tuple[str, str], warehouse_url: str, tmp_path: Path
) -> None:
    commands_topic, _ = topics
    s = scenario(random_users=10, seed=7)
    _produce(kafka, commands_topic, s)
    warehouse = WarehouseResource(url=warehouse_url)
    user_events_source().ensure_tables(warehouse)
    ranges = [OffsetRange(p, 0, end) for p, end in sorted(kafka.end_offsets(commands_topic).items()) if end]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "T_KAFKA": kafka.bootstrap_servers,
        "T_TOPIC": commands_topic,
        "T_WAREHOUSE": warehouse_url,
        "T_RANGES": json.dumps([[r.partition, r.start_offset, r.end_offset] for r in ranges]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_INGEST], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("BEFORE_COMMIT") and int(line.split()[1]) > 0, line
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    warehouse = WarehouseResource(url=warehouse_url)  # the DuckDB file is free again
    assert _rows(warehouse, "SELECT COUNT(*) AS n FROM raw.user_events") == [{"n": 0}]

    resources = {"warehouse": warehouse, "kafka": kafka}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    _ingest_all(instance, resources)
    # A replay of every range (a re-run after a crash past the commit) changes nothing either.
    replay = _graph(resources).resolve_job_def(user_events_source().ingest_job_name)
    op = user_events_source().op_name
    config = {
        "ops": {
            op: {
                "config": {
                    "ranges": [
                        {"partition": r.partition, "start_offset": r.start_offset, "end_offset": r.end_offset}
                        for r in ranges
                    ]
                }
            }
        }
    }
    assert replay.execute_in_process(run_config=config, instance=instance).success
    (raw,) = _rows(warehouse, "SELECT COUNT(*) AS n FROM raw.user_events")
    assert raw["n"] == len(s.commands)
    _build(instance, resources)
    _assert_matches_reference(warehouse, s)
