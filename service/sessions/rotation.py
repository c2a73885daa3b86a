"""Refresh rotation: start a session per login, spend its refresh token for a new pair, end
it when a spent token comes back.

Each login is a refresh-token family (RFC 9700 section 4.14). The session row remembers the
``jti`` of the single refresh token that may still be spent. Spending it issues a new pair and
records the new ``jti``; presenting any other token of the family means a spent token was
replayed, so the whole session is revoked. The check-and-swap is one conditional ``UPDATE``, so
of concurrent refreshes with one token exactly one rotates.

The reuse interval (``REFRESH_REUSE_INTERVAL``, as Supabase Auth's): for that many seconds
after a rotation, the token just spent is answered with the same successor again, byte for
byte, and a new access token of the session, instead of ending it. So a client's parallel
refreshes (several tabs, a retry after a lost answer) all get one and the same refresh token.
The successor is re-signed from the columns ``refresh_jti``, ``previous_jti`` and
``rotated_at`` (its ``jti`` and ``iat``): token signing is deterministic
(``service.security.tokens.signing``), so no usable token is stored. An older token (two rotations
back) or a reuse after the interval still ends the session. With 0 the loser of a race is
taken for the replay it is indistinguishable from, and the session ends.

Revoking sets ``revoked_at`` and announces it (``announce_revoked``); ``live_session_end`` is
asked on every authenticated request, or its answer remembered until such an announcement
(``service.db.fast.live_sessions``), so the session's access tokens are refused from then on.
Every revocation is logged as a ``session_revoked`` security event saying how
(``service.sessions.logout.log_revoked``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from service.errors import InvalidGrant
from service.security.events import security_event
from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP
from service.security.tokens.verification import TokenError
from service.services import Services
from service.sessions.logout import log_revoked
from service.sessions.queries import (
    active_role,
    insert_session,
    revoke_sessions,
    select_session,
    swap_refresh_jti,
)
from service.sessions.rules import (
    DEAD_DETAIL,
    PASSWORD_AMR,
    REUSED_DETAIL,
    ClientInfo,
    IssuedPair,
    NewSession,
    RefreshDecision,
    SessionLike,
    decide_refresh,
)


def _token_pair(services: Services, session: SessionLike, refresh: str, role: str) -> IssuedPair:
    settings = services.settings
    not_after = int(session.expires_at.timestamp())
    access = services.tokens.issue(
        ACCESS_TYP,
        user_id=session.user_id,
        session_id=session.id,
        ttl=settings.access_token_ttl,
        not_after=not_after,
        role=role,
        amr=session.amr.split(),
    )
    now = int(datetime.now(UTC).timestamp())
    return IssuedPair(
        access_token=access.value,
        refresh_token=refresh,
        expires_in=max(access.expires_at - now, 0),
        refresh_expires_in=max(not_after - now, 0),
    )


def _refresh_token(
    services: Services,
    session: SessionLike,
    *,
    token_id: str | None = None,
    issued_at: datetime | None = None,
) -> tuple[str, str]:
    """A new refresh token of ``session`` (its ``jti`` and text), issued at ``issued_at`` or now.

    Given the ``token_id`` and ``issued_at`` of one issued before, it is that token again.
    """
    issued = services.tokens.issue(
        REFRESH_TYP,
        user_id=session.user_id,
        session_id=session.id,
        ttl=services.settings.refresh_token_ttl,
        not_after=int(session.expires_at.timestamp()),
        token_id=token_id,
        issued_at=None if issued_at is None else int(issued_at.timestamp()),
    )
    return issued.token_id, issued.value


def _current_refresh(services: Services, session: SessionLike) -> str:
    """The session's current refresh token, re-signed from its ``jti`` and rotation time."""
    _, value = _refresh_token(
        services, session, token_id=session.refresh_jti, issued_at=session.rotated_at
    )
    return value


async def start_session(
    services: Services, user_id: uuid.UUID, client: ClientInfo, amr: str = PASSWORD_AMR
) -> IssuedPair:
    """Open a session for a user who just proved their password (and second factor, says
    ``amr``), and issue its first pair. ``amr`` stays on the session, so refreshed access
    tokens carry it too.

    ``InvalidGrant``, the answer of a wrong password, if the account was disabled or deleted
    since the password check (``active_role`` explains the lock that makes this exact).
    """
    now = datetime.now(UTC)
    session = NewSession(
        id=uuid.uuid4(),
        user_id=user_id,
        amr=amr,
        # Whole seconds, as in the tokens' ``exp``, so the session and its tokens end together.
        expires_at=now.replace(microsecond=0)
        + timedelta(seconds=services.settings.refresh_token_ttl),
    )
    refresh_jti, refresh = _refresh_token(services, session)
    async with services.db.write() as db:
        role = await active_role(db, user_id)
        if role is None:
            raise InvalidGrant("Invalid username or password.")
        await insert_session(db, session, refresh_jti, client, now)
    return _token_pair(services, session, refresh, role)


async def rotate(services: Services, refresh_token: str) -> IssuedPair:
    """Spend ``refresh_token`` for a new pair, or fail with ``InvalidGrant``."""
    try:
        token = services.tokens.verify(refresh_token, REFRESH_TYP)
    except TokenError as error:
        security_event("refresh_refused", reason=str(error))
        raise InvalidGrant(DEAD_DETAIL) from None
    interval = services.settings.refresh_reuse_interval
    now = datetime.now(UTC)
    revoked: Sequence[uuid.UUID] = ()
    async with services.db.write() as db:
        session = await select_session(db, token.session_id)
        decision = decide_refresh(session, token, now, interval)
        if decision is RefreshDecision.ROTATE:
            assert session is not None
            role = await active_role(db, session.user_id)
            if role is None:
                raise InvalidGrant(DEAD_DETAIL)  # disabled: its sessions are being revoked
            refresh_jti, refresh = _refresh_token(services, session, issued_at=now)
            if await swap_refresh_jti(db, session.id, token.token_id, refresh_jti, now):
                return _token_pair(services, session, refresh, role)
            # Another request spent it first (PostgreSQL: it committed while this one waited
            # at the swap): decide again on what that request wrote.
            session = await select_session(db, token.session_id)
            decision = decide_refresh(session, token, datetime.now(UTC), interval)
            if decision is RefreshDecision.ROTATE:  # pragma: no cover - the swap just failed
                decision = RefreshDecision.REUSED
        if decision is RefreshDecision.REPEAT:
            assert session is not None
            role = await active_role(db, session.user_id)
            if role is None:
                raise InvalidGrant(DEAD_DETAIL)
            security_event("refresh_repeated", user_id=token.user_id, session_id=token.session_id)
            return _token_pair(services, session, _current_refresh(services, session), role)
        if decision is RefreshDecision.REUSED:
            revoked = await revoke_sessions(db, token.user_id, now, only=token.session_id)
    if decision is RefreshDecision.REUSED:
        security_event(
            "refresh_reuse_detected",
            level=logging.WARNING,
            user_id=token.user_id,
            session_id=token.session_id,
        )
        log_revoked(token.user_id, revoked, how="reuse")
        raise InvalidGrant(REUSED_DETAIL)
    raise InvalidGrant(DEAD_DETAIL)
