"""Bearer authentication of protected routes (RFC 6750): header parsing and access-token checks.

An access token is accepted only while its login session is live, so that revocation (logout,
password change, refresh reuse) takes effect at once: one indexed lookup per request, or on
PostgreSQL the worker's memory of live sessions, which every revocation clears on every
instance in its own transaction (``service.db.fast.live_sessions``).

Tokens are read from the ``Authorization`` header only, never from the query string or a form
body (RFC 6750 section 2.3 leaks them into logs and histories).

Authentication comes before routing under the protected prefixes (``/admin``, ``/items``,
``/me``, ``/sessions`` and everything below them): an app-wide ``before_request`` hook,
which Quart runs before it raises a routing error, answers a caller without a valid token 401
whatever follows the prefix (an unknown sub-path, a malformed id, another method). A 404 or
405 would tell an anonymous caller which paths exist, and a client would take it for "no such
item" instead of "log in again". The route guards (``login_required``, a blueprint's
``require_bearer``) stay as a second line and reuse the principal the hook found, so a request
is checked once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import ParamSpec, TypeVar

from quart import g, request
from quart_schema import security_scheme

from service.errors import Unauthorized
from service.security.tokens.session import ACCESS_TYP
from service.security.tokens.verification import TokenError
from service.services import services
from service.sessions.queries import live_session_end

#: Paths that need a bearer token, each with everything below it (``/items/anything``).
PROTECTED_PREFIXES = ("/admin", "/items", "/me", "/sessions")

#: The OpenAPI security requirement of a protected operation (either scheme works).
BEARER_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"oauth2Password": []}]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user and the login session their access token belongs to."""

    user_id: uuid.UUID
    session_id: uuid.UUID


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def is_protected(path: str) -> bool:
    """Whether ``path`` is one of ``PROTECTED_PREFIXES`` or below one (``/meow`` is not)."""
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in PROTECTED_PREFIXES)


async def authenticate() -> Principal:
    """Check the request's access token; ``Unauthorized`` with the RFC 6750 challenge if bad.

    Once per request: a principal found earlier in the request (the prefix hook) is reused.
    """
    found: Principal | None = g.get("principal")
    if found is not None:
        return found
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise Unauthorized("A bearer access token is required.", token_presented=False)
    try:
        verified = services().tokens.verify(token, ACCESS_TYP)
    except TokenError:
        raise Unauthorized(
            "The access token is invalid or expired.", token_presented=True
        ) from None
    if not await _session_is_live(verified.session_id, verified.user_id):
        raise Unauthorized("The session of this access token has ended.", token_presented=True)
    principal = Principal(user_id=verified.user_id, session_id=verified.session_id)
    g.principal = principal
    return principal


async def _session_is_live(session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """The session check: from the worker's memory of live sessions when it knows (PostgreSQL,
    ``service.db.fast.live_sessions``), else one indexed read, whose answer it then remembers."""
    found = services()
    memory = found.live_sessions
    now = datetime.now(UTC)
    if memory is not None and memory.knows_live(session_id, user_id, now):
        return True
    epoch = 0 if memory is None else memory.epoch
    async with found.db.read() as db:
        ends = await live_session_end(db, session_id, user_id, now)
    if ends is None:
        return False
    if memory is not None:
        memory.remember(session_id, user_id, ends, epoch)
    return True


async def require_bearer() -> None:
    """``before_request`` hook of a blueprint whose every route needs an access token.

    ``OPTIONS`` passes: a CORS preflight never carries a token (browsers send it without
    one), and Quart answers it itself, without running a route handler.
    """
    if request.method != "OPTIONS":
        await authenticate()


async def require_bearer_under_protected_prefixes() -> None:
    """App-wide ``before_request`` hook: authenticate every request under a protected prefix
    before its route is looked up; ``OPTIONS`` (CORS preflights) passes as in ``require_bearer``.
    """
    if request.method != "OPTIONS" and is_protected(request.path):
        await authenticate()


def current_principal() -> Principal:
    """The caller of a route guarded by ``login_required`` or a blueprint's ``authenticate``."""
    principal: Principal = g.principal
    return principal


def login_required(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Guard one route with bearer authentication and document its security requirement."""

    @wraps(handler)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        await authenticate()
        return await handler(*args, **kwargs)

    return security_scheme(BEARER_SECURITY)(guarded)
