"""The versioned API: every domain route again under ``/v1/<domain>``, JSON keys in snake_case.

The seeds' paths (``/api/metrics/*`` snake_case, ``/metrics/*`` camelCase, ``/insights/*``, ``/ops/*``)
stay as they are, documented as aliases. A router module declares ``V1_PREFIX``; its routes are added
again under that prefix with the same endpoint, parameters and answers, except that response models
whose fields carry camelCase aliases are replaced by alias-free copies, so the OpenAPI schema of a
``/v1`` route describes exactly the keys it returns.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, create_model

_SNAKE: dict[type[BaseModel], type[BaseModel]] = {}


def _has_aliases(model: type[BaseModel]) -> bool:
    return any(f.alias or f.serialization_alias for f in model.model_fields.values())


def snake_case_type(tp: Any) -> Any:
    """``tp`` with every aliased model in it replaced by its alias-free copy (recursively)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return snake_case_model(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is None or not args:
        return tp
    if origin is Annotated:
        return Annotated[(snake_case_type(args[0]), *tp.__metadata__)]
    rewritten = tuple(snake_case_type(a) for a in args)
    if rewritten == args:
        return tp
    if origin in (Union, types.UnionType):
        return typing.Union[rewritten]  # noqa: UP007 - built from a runtime tuple
    return origin[rewritten]


def snake_case_model(model: type[BaseModel]) -> type[BaseModel]:
    """A copy of ``model`` whose JSON keys are its field names (no alias), nested models included."""
    if model in _SNAKE:
        return _SNAKE[model]
    nested = any(snake_case_type(f.annotation) is not f.annotation for f in model.model_fields.values())
    if not _has_aliases(model) and not nested:
        _SNAKE[model] = model
        return model
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        plain = copy.copy(info)
        plain.alias = plain.validation_alias = plain.serialization_alias = None
        plain.alias_priority = None
        fields[name] = (snake_case_type(info.annotation), plain)
    config = ConfigDict(**{k: v for k, v in model.model_config.items() if k != "alias_generator"})  # type: ignore[typeddict-item]
    snake = create_model(model.__name__ + "V1", __config__=config, __doc__=model.__doc__, **fields)
    _SNAKE[model] = snake
    return snake


def v1_routes(router: APIRouter, v1_prefix: str) -> APIRouter:
    """``router``'s routes under ``v1_prefix`` (the router's own prefix replaced), snake_case answers."""
    versioned = APIRouter(prefix=v1_prefix)
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        path = route.path.removeprefix(router.prefix) or "/"
        versioned.add_api_route(
            path,
            route.endpoint,
            methods=sorted(route.methods or ()),
            response_model=snake_case_type(route.response_model) if route.response_model else None,
            response_model_by_alias=False,
            status_code=route.status_code,
            tags=[f"v1 {tag}" for tag in route.tags or ["api"]],
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            responses=route.responses,
            name=f"v1_{route.name}",
            include_in_schema=route.include_in_schema,
        )
    return versioned


def mark_seed_aliases(router: APIRouter, v1_prefix: str) -> None:
    """Document the seed-path routes as aliases of their ``/v1`` route (answers unchanged)."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            v1_path = v1_prefix + (route.path.removeprefix(router.prefix) or "/")
            note = f"Seed-compatible path, kept as an alias of `{v1_path}` (which answers in snake_case)."
            if note not in (route.description or ""):  # routers are module-level: one note per process
                route.description = f"{note}\n\n{route.description or ''}".strip()
                route.tags = [f"{tag} (seed paths)" for tag in route.tags or ["api"]]


def add_versioned(app_routers: Iterable[tuple[APIRouter, str | None]]) -> list[APIRouter]:
    """The ``/v1`` routers of every domain router that declares a ``V1_PREFIX``."""
    versioned = []
    for router, v1_prefix in app_routers:
        if v1_prefix:
            versioned.append(v1_routes(router, v1_prefix))
            mark_seed_aliases(router, v1_prefix)
    return versioned
