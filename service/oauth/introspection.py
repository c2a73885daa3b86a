"""Token introspection (RFC 7662): whether an access token is active now, and its claims.

An access token is active while its signature, header and claims check out (as for any
protected route, ``service.security.tokens``) and its login session is live. The session is
looked up on every call, nothing positive is remembered, so a token revoked a moment ago is
inactive at once.

Only access tokens are ever active here. The callers are resource servers, and a refresh token
is no credential for them: answering ``active: false`` means a resource server that checks only
``active`` can never be tricked into taking a refresh token for an access token (RFC 8725
section 3.11). ``token_type_hint`` is read and ignored, which RFC 7662 section 2.1 allows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, select

from service.db import Reader
from service.db.models import LoginSession, User
from service.security.tokens.session import ACCESS_TYP
from service.security.tokens.verification import TokenError
from service.services import Services

#: The ``token_type`` of an active access token: its RFC 6749 section 5.1 type, as /login says.
ACCESS_TOKEN_TYPE = "bearer"  # noqa: S105 - the RFC 6750 scheme name


@dataclass(frozen=True, slots=True)
class ActiveToken:
    """An active access token's members of the RFC 7662 section 2.2 response."""

    sub: str
    username: str
    exp: int
    iat: int
    nbf: int
    jti: str
    iss: str
    aud: str
    token_type: str = ACCESS_TOKEN_TYPE


_SELECT_LIVE_SESSION_USERNAME = (
    select(User.username)
    .join(LoginSession, LoginSession.user_id == User.id)
    .where(
        LoginSession.id == bindparam("session_id"),
        LoginSession.user_id == bindparam("user_id"),
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > bindparam("now"),
    )
)


async def select_live_session_username(
    db: Reader, user_id: uuid.UUID, session_id: uuid.UUID
) -> str | None:
    """The username of the user whose live session this is; None if it is not live."""
    params = {"session_id": session_id, "user_id": user_id, "now": datetime.now(UTC)}
    username: str | None = await db.scalar(_SELECT_LIVE_SESSION_USERNAME, params)
    return username


async def introspect(services: Services, token: str) -> ActiveToken | None:
    """The claims of ``token`` if it is an active access token of this service, else None."""
    try:
        verified = services.tokens.verify(token, ACCESS_TYP)
    except TokenError:
        return None
    async with services.db.read() as db:
        username = await select_live_session_username(db, verified.user_id, verified.session_id)
    if username is None:
        return None
    return ActiveToken(
        sub=str(verified.user_id),
        username=username,
        exp=verified.expires_at,
        iat=verified.issued_at,
        nbf=verified.not_before,
        jti=verified.token_id,
        iss=services.settings.jwt_issuer,
        aud=services.settings.jwt_audience,
    )
