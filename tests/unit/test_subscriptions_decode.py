"""The subscriptions decoder (Kafka messages and landed JSONL lines): typed rows, dead letters."""

import json
from pathlib import Path

import pytest

from assets.subscriptions.decode import decode_commands
from assets.subscriptions.landed_files import read_subscription_file
from resources.landing_zone import LandedContent

GOOD = {
    "event_id": "c-1",
    "correlation_id": "c-1",
    "event_type": "pagamento_registrado",
    "user_id": "u-1",
    "occurred_at": "2024-05-01T13:00:00.5-03:00",
    "idempotency_key": "k-1",
    "payload": {"valor": "49.90", "metodo": "pix", "status": "recusado"},
}


def _value(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def test_a_valid_envelope_becomes_typed_columns_and_its_payload() -> None:
    decoded = decode_commands([_value()], 65_536)
    (row,) = decoded.events.to_pylist()
    assert (row["valor"], row["metodo"], row["pagamento_status"], row["idempotency_key"]) == (
        49.9, "pix", "recusado", "k-1"
    )  # fmt: skip
    assert row["occurred_at"].isoformat() == "2024-05-01T16:00:00.500000"  # converted to UTC
    assert json.loads(row["payload"]) == GOOD["payload"]
    assert decoded.rows.tolist() == [0] and decoded.dead_rows.tolist() == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_a_json_object: list"),
        (_value(event_type="assinatura_pausada"), "unknown_event_type: assinatura_pausada"),
        (_value(correlation_id=None), "missing_field: correlation_id"),
        (_value(user_id=7), "wrong_type: user_id"),
        (_value(user_id='u"1'), "invalid_value: user_id"),
        (_value(occurred_at="yesterday"), "invalid_timestamp: occurred_at"),
        (_value(payload={"valor": "abc", "metodo": "pix"}), "wrong_type: payload.valor"),
        (_value(payload={"valor": "1.999", "metodo": "pix"}), "invalid_value: payload.valor"),
        (_value(payload={"valor": "10.00"}), "missing_field: payload.metodo"),
        (
            _value(event_type="config_atualizada", payload={"preferencias": []}),
            "wrong_type: payload.preferencias",
        ),
        (
            _value(event_type="assinatura_criada", payload={"plano": "basico"}),
            "missing_field: payload.valor_mensal",
        ),
        (None, "empty_payload"),
    ],
)
def test_malformed_messages_are_dead_letters_with_the_first_rule_broken(
    value: bytes | None, reason: str
) -> None:
    decoded = decode_commands([_value(), value], 65_536)
    assert decoded.rows.tolist() == [0] and decoded.dead_rows.tolist() == [1]
    assert decoded.dead_reasons[0].startswith(reason), decoded.dead_reasons


def test_a_landed_jsonl_file_goes_through_the_same_decoder(tmp_path: Path) -> None:
    data = b"\n".join([_value(), b"", b"{broken", _value(correlation_id="c-2", event_id="c-2")]) + b"\n"
    parsed = read_subscription_file(LandedContent("cmds.jsonl", data, "cmds.jsonl__abcdefabcdef"))
    assert parsed.rows.column("correlation_id").to_pylist() == ["c-1", "c-2"]
    assert parsed.rows.column("source_line").to_pylist() == [1, 4]
    assert parsed.rejects.to_pylist()[0]["source_line"] == 3
    assert parsed.rejects.to_pylist()[0]["reason"].startswith("invalid_json")
    assert parsed.total_rows == 3
