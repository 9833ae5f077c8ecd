"""Subscriptions platform commands (seed streaming-polyglot-platform): write by event, read the outcome.

``POST /usuarios``, ``/usuarios/{id}/assinatura``, ``/usuarios/{id}/pagamento``, ``/usuarios/{id}/config``
validate the request and produce ONE event to ``SUBSCRIPTIONS_COMMANDS_TOPIC`` keyed by user id
(envelope and idempotency: :mod:`api.commands`), answering ``202`` with the command's
``correlation_id`` once Kafka has confirmed it, ``503`` when it cannot (nothing accepted: retry).

``GET /status/{correlation_id}`` reads the outcome the processing wrote to ``stg.command_outcomes``
(columns ``correlation_id``, ``status`` = processed|rejected, ``reason``, ``row_ids`` = JSON object
``{"table": ["id", ...]}``); without one, ``accepted`` if this process produced it recently, the shared
idempotency store holds it as produced (a keyed command, whichever worker produced it) or the event
reached ``raw.user_events``, else ``404``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import anyio.from_thread
import orjson
from fastapi import APIRouter, FastAPI, Header, HTTPException, Path, Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from api.commands import (
    CommandBus,
    IdempotencyConflictError,
    IdempotencyStoreUnavailableError,
    bus_from_settings,
    new_user_id,
)
from api.db import Database, Db, NotMaterializedError
from api.schema import ErrorAnswer, Text
from resources.event_producer import ProduceError


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The bus is built at startup (a misconfigured idempotency store fails here, not at the first
    command); this process's producer and idempotency store connections are closed at shutdown (queued
    commands get a bounded chance)."""
    if getattr(app.state, "subscription_commands", None) is None:
        app.state.subscription_commands = bus_from_settings(app.state.db.url)
    yield
    bus = getattr(app.state, "subscription_commands", None)
    if bus is not None:
        await bus.aclose()


router = APIRouter(tags=["subscriptions"], lifespan=_lifespan)

# ----- requests

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$"
UserId = Annotated[
    str, Path(pattern=USER_ID_PATTERN, description="User id (as answered by POST /usuarios), 1-64 chars")
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,200}$",
        description="Client-chosen unique key (e.g. a UUID): a retry with the same key returns the same "
        "correlation_id and produces no second event",
    ),
]
# Plain character classes only (no \s): Python, Rust (pydantic) and ECMA regexes agree on them.
Name = Annotated[Text, StringConstraints(max_length=200, strip_whitespace=True)]
_MAILBOX = r"[^@\x00-\x20\x7f]+"
Email = Annotated[str, StringConstraints(max_length=254, pattern=rf"^{_MAILBOX}@{_MAILBOX}\.{_MAILBOX}$")]
Plan = Annotated[Text, StringConstraints(max_length=50, strip_whitespace=True)]
PreferenceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
# Strict non-text branches: a JSON string is text only (lax mode would read "000...0" as an int and skip
# the text's length limit).
PreferenceValue = (
    Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]
    | StrictBool
    | StrictInt
    | StrictFloat
    | None
)

# Money in: a positive amount of whole cents below 100 million, as a decimal string ("39.90") or a JSON
# number (float noise below a millionth of a cent is rounded away; 10.005 is refused). The event carries
# it as a decimal string with 2 places.
_AMOUNT_TEXT = re.compile(r"^([1-9][0-9]{0,7}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$")
_CENT = Decimal("0.01")


def _amount(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("an amount is a number or a decimal string, not a boolean")
    if isinstance(value, str):
        if not _AMOUNT_TEXT.match(value):
            raise ValueError("expected a decimal string like 39.90 (positive, at most 2 decimals)")
        return Decimal(value).quantize(_CENT)
    if isinstance(value, float):
        exact = Decimal(repr(value))
        cents = exact.quantize(_CENT)
        return cents if abs(exact - cents) < Decimal("1e-8") else exact
    if isinstance(value, int):
        return Decimal(value).quantize(_CENT)
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(gt=0, lt=100_000_000, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _AMOUNT_TEXT.pattern},
                {"type": "number", "exclusiveMinimum": 0, "maximum": 99_999_999.99, "multipleOf": 0.01},
            ],
            "description": "Positive amount with at most 2 decimals: a decimal string (exact) or a number",
            "examples": ["39.90"],
        },
        mode="validation",
    ),
]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NovoUsuario(_Command):
    """A new user; the server assigns its id (derived from the Idempotency-Key when one is sent)."""

    nome: Name
    email: Email


class PlanoAssinatura(_Command):
    """Create the user's subscription (acao criar, the default) or change its plan/price (alterar)."""

    acao: Literal["criar", "alterar"] = Field("criar", description="What to do")
    plano: Plan = Field(description="Plan name")
    valor_mensal: Amount = Field(description="Monthly price")


class CancelamentoAssinatura(_Command):
    """Cancel the user's subscription."""

    acao: Literal["cancelar"]


Assinatura = PlanoAssinatura | CancelamentoAssinatura


class Pagamento(_Command):
    """A payment the user made (as reported by the payment provider)."""

    valor: Amount
    metodo: Literal["cartao_credito", "cartao_debito", "pix", "boleto"]
    status: Literal["aprovado", "recusado"] = Field("aprovado", description="The provider's answer")


class Config(_Command):
    """Preferences to set: they become the user's current preferences (stg.preferencias keeps the latest)."""

    preferencias: dict[PreferenceName, PreferenceValue] = Field(
        min_length=1, max_length=50, json_schema_extra={"additionalProperties": False}
    )


# ----- answers


class CommandAccepted(BaseModel):
    correlation_id: str = Field(description="Follow the command with GET /status/{correlation_id}")
    status: Literal["accepted"]
    user_id: str
    event_type: str


class CommandStatus(BaseModel):
    correlation_id: str
    status: Literal["accepted", "processed", "rejected"]
    reason: str | None = Field(default=None, description="Why the command was rejected")
    row_ids: dict[str, list[str]] | None = Field(
        default=None, description="Rows the command wrote, per table"
    )


COMMAND_ANSWERS: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted: Kafka holds the command's event; processing follows asynchronously"},
    400: {"model": ErrorAnswer, "description": "The body is not JSON"},
    409: {"model": ErrorAnswer, "description": "The Idempotency-Key already named a different request"},
    503: {
        "model": ErrorAnswer,
        "description": "Kafka unreachable or did not confirm within SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS, "
        "or the idempotency store unreachable (keyed commands): nothing was accepted; retry (with the "
        "same Idempotency-Key)",
    },
}


def command_bus(request: Request) -> CommandBus:
    """This app's bus (one per process, producer created at the first command; built here when the app
    was served without its lifespan)."""
    state = request.app.state
    bus = getattr(state, "subscription_commands", None)
    if bus is None:
        bus = state.subscription_commands = bus_from_settings(state.db.url)
    return bus


async def _submit(
    request: Request,
    route: str,
    event_type: str,
    user_id: str,
    key: str | None,
    payload: dict[str, Any],
) -> CommandAccepted:
    try:
        accepted = await command_bus(request).submit(
            route=route, event_type=event_type, user_id=user_id, idempotency_key=key, payload=payload
        )
    except IdempotencyConflictError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except ProduceError as exc:
        raise HTTPException(
            status_code=503,
            detail=f"command not accepted, Kafka unavailable: {exc}",
            headers={"Retry-After": "5"},
        ) from exc
    except IdempotencyStoreUnavailableError as exc:
        raise HTTPException(
            status_code=503, detail=f"command not accepted: {exc}", headers={"Retry-After": "2"}
        ) from exc
    return CommandAccepted(
        correlation_id=accepted.correlation_id,
        status="accepted",
        user_id=accepted.user_id,
        event_type=accepted.event_type,
    )


@router.post(
    "/usuarios",
    status_code=202,
    response_model=CommandAccepted,
    responses=COMMAND_ANSWERS,
    summary="Create a user (event usuario_criado)",
)
async def criar_usuario(request: Request, body: NovoUsuario, key: IdempotencyKey = None) -> CommandAccepted:
    user_id = new_user_id(key)
    payload = body.model_dump(mode="json")
    return await _submit(request, "POST /usuarios", "usuario_criado", user_id, key, payload)


_SUBSCRIPTION_EVENTS = {
    "criar": "assinatura_criada",
    "alterar": "assinatura_alterada",
    "cancelar": "assinatura_cancelada",
}


@router.post(
    "/usuarios/{user_id}/assinatura",
    status_code=202,
    response_model=CommandAccepted,
    responses=COMMAND_ANSWERS,
    summary="Create, change or cancel a subscription (assinatura_criada|alterada|cancelada)",
)
async def assinatura(
    request: Request, user_id: UserId, body: Assinatura, key: IdempotencyKey = None
) -> CommandAccepted:
    payload = body.model_dump(mode="json", exclude={"acao"})  # the event type says what to do
    event_type = _SUBSCRIPTION_EVENTS[body.acao]
    return await _submit(request, "POST /usuarios/{id}/assinatura", event_type, user_id, key, payload)


@router.post(
    "/usuarios/{user_id}/pagamento",
    status_code=202,
    response_model=CommandAccepted,
    responses=COMMAND_ANSWERS,
    summary="Record a payment (event pagamento_registrado)",
)
async def pagamento(
    request: Request, user_id: UserId, body: Pagamento, key: IdempotencyKey = None
) -> CommandAccepted:
    payload = body.model_dump(mode="json")
    return await _submit(
        request, "POST /usuarios/{id}/pagamento", "pagamento_registrado", user_id, key, payload
    )


@router.post(
    "/usuarios/{user_id}/config",
    status_code=202,
    response_model=CommandAccepted,
    responses=COMMAND_ANSWERS,
    summary="Update a user's preferences (event config_atualizada)",
)
async def config(
    request: Request, user_id: UserId, body: Config, key: IdempotencyKey = None
) -> CommandAccepted:
    payload = body.model_dump(mode="json")
    return await _submit(request, "POST /usuarios/{id}/config", "config_atualizada", user_id, key, payload)


# ----- status


@router.get(
    "/status/{correlation_id}",
    response_model=CommandStatus,
    summary="A command's state: accepted, then processed (with its rows) or rejected (with the reason)",
    responses={404: {"model": ErrorAnswer, "description": "No command with this correlation_id is known"}},
)
def status(
    request: Request,
    db: Db,
    command: Annotated[UUID, Path(alias="correlation_id", description="As answered by the command's POST")],
) -> CommandStatus:
    correlation_id = str(command)
    outcome = _outcome(db, correlation_id)
    if outcome is not None:
        return outcome
    bus = getattr(request.app.state, "subscription_commands", None)
    # The store's connections live on the event loop: asked from this (threadpool) route through it.
    if (bus is not None and anyio.from_thread.run(bus.accepted, correlation_id)) or _ingested(
        db, correlation_id
    ):
        return CommandStatus(correlation_id=correlation_id, status="accepted")
    raise HTTPException(status_code=404, detail=f"no command {correlation_id} is known (yet)")


def _missing_table(exc: NotMaterializedError, table: str) -> bool:
    """The table itself is absent (not produced yet), as opposed to a column the query names."""
    return table in exc.detail and "column" not in exc.detail.lower()


def _outcome(db: Database, correlation_id: str) -> CommandStatus | None:
    try:
        row = db.one(
            "SELECT status, reason, row_ids FROM stg.command_outcomes WHERE correlation_id = :cid LIMIT 1",
            {"cid": correlation_id},
        )
    except NotMaterializedError as exc:
        if _missing_table(exc, "command_outcomes"):
            return None  # the processing has not built its outcomes yet: nothing is processed
        raise
    if row is None or row["status"] not in ("processed", "rejected"):
        return None
    row_ids = row["row_ids"]
    if isinstance(row_ids, str | bytes):
        row_ids = orjson.loads(row_ids)
    return CommandStatus(
        correlation_id=correlation_id,
        status=row["status"],
        reason=row["reason"],
        row_ids={table: [str(i) for i in ids] for table, ids in (row_ids or {}).items()} or None,
    )


def _ingested(db: Database, correlation_id: str) -> bool:
    try:
        row = db.one(
            "SELECT 1 AS found FROM raw.user_events WHERE correlation_id = :cid LIMIT 1",
            {"cid": correlation_id},
        )
    except NotMaterializedError as exc:
        if _missing_table(exc, "user_events"):
            return False
        raise
    return row is not None
