"""Ending sessions: logout of one scope, ending one session by its id, and the security event
that every ended session is logged as, whoever ended it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from service.errors import NotFound, Unauthorized
from service.security.events import security_event
from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP, VerifiedToken
from service.security.tokens.verification import TokenError
from service.services import Services
from service.sessions.queries import revoke_sessions, select_session
from service.sessions.rules import LogoutScope, proves_live_session


def logout_credential(
    services: Services, refresh_token: str | None, access_token: str | None
) -> VerifiedToken:
    """The token that names the session to log out of: the refresh token if one was sent.

    ``Unauthorized`` when neither was sent, or the one sent is not a token of ours that is
    still within its lifetime. Whether its session is still live is ``log_out``'s question.
    """
    if refresh_token is not None:
        typ, value = REFRESH_TYP, refresh_token
    elif access_token is not None:
        typ, value = ACCESS_TYP, access_token
    else:
        raise Unauthorized(
            "Send the refresh token in the body or an access token as a bearer token.",
            token_presented=False,
        )
    try:
        return services.tokens.verify(value, typ)
    except TokenError:
        raise Unauthorized("The token is invalid or expired.", token_presented=True) from None


async def log_out(services: Services, token: VerifiedToken, scope: LogoutScope) -> None:
    """End the sessions that ``scope`` names, as seen from the session of ``token``.

    ``local`` is idempotent: any unexpired token of ours ends its own session, live or not
    (a client retrying a logout whose answer it lost gets 204 again; a spent refresh token
    may end its session, as replaying it at ``/refresh`` would). ``others`` and ``global``
    act on other sessions, so they need a token that proves a live session, else
    ``Unauthorized``.
    """
    now = datetime.now(UTC)
    async with services.db.write() as db:
        if scope is not LogoutScope.LOCAL:
            session = await select_session(db, token.session_id)
            if not proves_live_session(session, token, now):
                raise Unauthorized("The session of this token has ended.", token_presented=True)
        revoked = await revoke_sessions(
            db,
            token.user_id,
            now,
            only=token.session_id if scope is LogoutScope.LOCAL else None,
            keep=token.session_id if scope is LogoutScope.OTHERS else None,
        )
    log_revoked(token.user_id, revoked, how="logout", scope=scope.value)


async def end_session(services: Services, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Revoke one live session of the user; ``NotFound`` if there is none by that id."""
    async with services.db.write() as db:
        revoked = await revoke_sessions(db, user_id, datetime.now(UTC), only=session_id)
    if not revoked:
        raise NotFound("No such session.")
    log_revoked(user_id, revoked, how="delete")


def log_revoked(
    user_id: uuid.UUID,
    session_ids: Iterable[uuid.UUID],
    *,
    how: str,
    scope: str | None = None,
) -> None:
    """One ``session_revoked`` event per session ended.

    ``how``: ``logout`` (with its ``scope``), ``delete``, ``password_change``, ``reuse``,
    ``account_deleted``, ``revoke`` (``POST /revoke``), or ``admin`` (an admin disabled or
    deleted the account or ended its sessions).
    """
    for session_id in session_ids:
        security_event(
            "session_revoked", user_id=user_id, session_id=session_id, how=how, scope=scope
        )
