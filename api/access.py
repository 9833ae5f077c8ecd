"""Who may read what: API keys with roles, checked before any route (or cached answer) runs.

Keys are configured hashed (``name:role[+role...]:sha256-hex``, in ``API_KEYS`` or one per line in
the secret file ``API_KEYS_FILE``), so neither the environment nor a file holds a usable key; a client
sends the key itself as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. Each path prefix
needs one role (``viewer`` for metrics/insights/dashboard data, ``ops`` for ``/ops``, ``writer`` for
commands); ``/health``, ``/ready``, the docs and the dashboard's static pages stay open.

Per-key rate limits use the ``limits`` library (moving window; ``API_RATE_LIMIT_STORAGE`` may point
at memcached/redis so several workers share one count); past the limit the answer is ``429`` with
``Retry-After``. The check is an ASGI middleware so that a cached answer is never served to a client
that may not read it.

``python -m api.access new-key viewer`` prints a fresh key and the entry to configure.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from api.asgi import send_bytes
from resources.settings import ApiSettings

ROLES = ("viewer", "ops", "writer")
# Longest prefix wins; paths matching none are open (health probes, docs, the dashboard's pages).
DEFAULT_PATH_ROLES: Mapping[str, str] = {
    "/api/metrics": "viewer",
    "/metrics": "viewer",
    "/insights": "viewer",
    "/dashboard/data": "viewer",
    "/ops": "ops",
    "/v1/ops": "ops",
    "/v1": "viewer",
    "/usuarios": "writer",
    "/status": "writer",
    "/v1/subscriptions/usuarios": "writer",
    "/v1/subscriptions/status": "writer",
}


class AccessConfigError(ValueError):
    """``API_KEYS`` / ``API_KEYS_FILE`` hold an entry that is not ``name:roles:sha256``."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    roles: frozenset[str]


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256 hex (keys are 256-bit random, so no stretching is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key_entries(lines: Iterable[str]) -> dict[str, ApiKey]:
    """``{sha256: ApiKey}`` from ``name:role[+role]:sha256`` entries (blank and ``#`` lines skipped)."""
    keys: dict[str, ApiKey] = {}
    for raw in lines:
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":")
        if len(parts) != 3:
            raise AccessConfigError(f"API key entry {entry[:40]!r}: expected name:role[+role]:sha256")
        name, roles_text, digest = (p.strip() for p in parts)
        roles = frozenset(r for r in roles_text.split("+") if r)
        unknown = roles - set(ROLES)
        if not name or not roles or unknown:
            raise AccessConfigError(f"API key {name!r}: roles must be among {ROLES}, got {roles_text!r}")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise AccessConfigError(f"API key {name!r}: the third field must be a SHA-256 hex digest")
        keys[digest.lower()] = ApiKey(name=name, roles=roles)
    return keys


def configured_keys() -> dict[str, ApiKey]:
    """Keys from ``API_KEYS`` (comma-separated) and the secret file ``API_KEYS_FILE``."""
    settings = ApiSettings.current()
    entries = [e for e in settings.keys.split(",") if e.strip()]
    path = settings.keys_file
    if path:
        entries.extend(Path(path).read_text().splitlines())
    return parse_key_entries(entries)


def required_role(path: str, path_roles: Mapping[str, str] = DEFAULT_PATH_ROLES) -> str | None:
    """The role a path needs (longest matching prefix on a segment boundary), ``None`` if open."""
    best: tuple[int, str] | None = None
    for prefix, role in path_roles.items():
        if (path == prefix or path.startswith(prefix + "/")) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), role)
    return best[1] if best else None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: ``X-API-Key`` first, else an ``Authorization: Bearer`` token."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class AccessControl:
    """Authenticates a key, checks the role, and counts the key's requests against its rate limit."""

    def __init__(
        self,
        keys: Mapping[str, ApiKey],
        rate_limit: str | None,
        storage_uri: str = "memory://",
        path_roles: Mapping[str, str] = DEFAULT_PATH_ROLES,
    ) -> None:
        self.keys = dict(keys)
        self.path_roles = path_roles
        self.limit: RateLimitItem | None = parse(rate_limit) if rate_limit else None
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri)) if self.limit else None

    def decide(self, path: str, headers: Mapping[str, str]) -> tuple[int, str, dict[str, str]] | None:
        """``None`` to let the request through, else ``(status, message, extra headers)``."""
        role = required_role(path, self.path_roles)
        if role is None:
            return None
        key = presented_key(headers)
        if key is None:
            return 401, "an API key is required (X-API-Key header or Authorization: Bearer)", _CHALLENGE
        # Looked up by digest: how long the lookup takes tells nothing about any stored key.
        found = self.keys.get(hash_key(key))
        if found is None:
            return 401, "unknown API key", _CHALLENGE
        if role not in found.roles:
            return 403, f"API key {found.name!r} lacks the {role!r} role this path needs", {}
        if self.limit is None or self.limiter is None or self.limiter.hit(self.limit, found.name):
            return None
        reset = self.limiter.get_window_stats(self.limit, found.name).reset_time
        retry = str(max(1, math.ceil(reset - time.time())))
        return 429, f"rate limit {self.limit} exceeded for {found.name!r}", {"retry-after": retry}


_CHALLENGE = {"www-authenticate": 'Bearer realm="afluente"'}


class AccessMiddleware:
    """Pure ASGI: refuses a request before routing (so before the response cache) when access says so."""

    def __init__(self, app: ASGIApp, control: AccessControl) -> None:
        self.app = app
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self.control.decide(scope["path"], headers)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message, extra = refused
        answer_headers = [(k.encode(), v.encode()) for k, v in extra.items()]
        await send_bytes(send, status, orjson.dumps({"detail": message}), b"application/json", answer_headers)


def access_from_settings() -> AccessControl | None:
    """The configured access control, or ``None`` when ``API_AUTH`` is off (``make demo``)."""
    settings = ApiSettings.current()
    if not settings.auth:
        return None
    keys = configured_keys()
    if not keys:
        raise AccessConfigError("API_AUTH is on but neither API_KEYS nor API_KEYS_FILE holds a key")
    limit = settings.rate_limit.strip()
    return AccessControl(
        keys,
        rate_limit=None if limit.lower() in ("", "off", "none") else limit,
        storage_uri=settings.rate_limit_storage,
    )


def document_security(openapi: dict[str, Any], path_roles: Mapping[str, str] = DEFAULT_PATH_ROLES) -> None:
    """Declare the key schemes and, on each protected operation, its role and the 401/403/429 answers."""
    components = openapi.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(
        {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer", "description": "the API key as a bearer token"},
        }
    )
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorAnswer"}}}
    has_error_schema = "ErrorAnswer" in components.get("schemas", {})
    for path, operations in openapi.get("paths", {}).items():
        role = required_role(path, path_roles)
        if role is None:
            continue
        for operation in operations.values():
            operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
            operation["description"] = (
                operation.get("description", "") + f"\n\nNeeds an API key with the `{role}` role "
                "when `API_AUTH` is on."
            ).strip()
            for code, text in (
                ("401", "No API key, or an unknown one (API_AUTH on)"),
                ("403", f"The key lacks the `{role}` role"),
                ("429", "Rate limit exceeded; retry after the `Retry-After` seconds"),
            ):
                answer: dict[str, Any] = {"description": text}
                if has_error_schema:
                    answer["content"] = error
                if code == "429":
                    answer["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
                operation.setdefault("responses", {}).setdefault(code, answer)


def main(argv: list[str]) -> int:
    """``python -m api.access new-key ROLE[+ROLE] [NAME]`` or ``hash KEY``."""
    if len(argv) >= 2 and argv[0] == "new-key":
        roles = argv[1]
        name = argv[2] if len(argv) > 2 else f"{roles.replace('+', '-')}-{secrets.token_hex(3)}"
        parse_key_entries([f"{name}:{roles}:{'0' * 64}"])  # validates the roles
        key = secrets.token_urlsafe(32)
        print(f"key (give it to the client, it is not stored): {key}")
        print(f"entry (API_KEYS or a line of API_KEYS_FILE): {name}:{roles}:{hash_key(key)}")
        return 0
    if len(argv) == 2 and argv[0] == "hash":
        print(hash_key(argv[1]))
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
