"""bench.commands_latency turns the generator's envelopes into requests the command API accepts."""

from __future__ import annotations

from collections import Counter

from pydantic import TypeAdapter

from api.commands import new_user_id
from api.routers.subscriptions import Assinatura, Config, NovoUsuario, Pagamento
from bench.commands_latency import generated_requests, request_for
from generators.subscriptions import EVENT_TYPES, generate_commands

BODIES = {"/usuarios": NovoUsuario, "assinatura": Assinatura, "pagamento": Pagamento, "config": Config}


def test_every_generated_command_is_a_valid_request_naming_the_generators_user() -> None:
    seen: Counter[str] = Counter()
    for generated in generate_commands(users=300, days=60, seed=3):
        event = generated.event
        path, body, headers = request_for(event)
        model = BODIES["/usuarios" if path == "/usuarios" else path.rsplit("/", 1)[1]]
        parsed = TypeAdapter(model).validate_python(body)
        if event["event_type"] == "usuario_criado":
            # The API derives the new user's id from the key, as the generator did.
            assert new_user_id(headers["Idempotency-Key"]) == event["user_id"]
        else:
            assert path.split("/")[2] == event["user_id"]
        if event["event_type"].startswith("assinatura_"):
            assert parsed.acao == {"assinatura_criada": "criar", "assinatura_alterada": "alterar",
                                   "assinatura_cancelada": "cancelar"}[event["event_type"]]  # fmt: skip
        assert headers.get("Idempotency-Key") == event["idempotency_key"]
        seen[event["event_type"]] += 1
    assert set(seen) == set(EVENT_TYPES)


def test_generated_requests_gives_exactly_the_count_asked() -> None:
    requests, kinds = generated_requests(500, seed=9)
    assert len(requests) == 500 == sum(kinds.values())
