"""Login sessions: start one per login, rotate its refresh token, revoke it on reuse, list and
end them (logout of one scope, remote logout, password change).

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
(``service.security.tokens``), so no usable token is stored. An older token (two rotations
back) or a reuse after the interval still ends the session. With 0 the loser of a race is
taken for the replay it is indistinguishable from, and the session ends.

Revoking sets ``revoked_at`` and announces it (``announce_revoked``); ``live_session_end`` is
asked on every authenticated request, or its answer remembered until such an announcement
(``service.db.fast.live_sessions``), so the session's access tokens are refused from then on.
Every revocation is logged as a ``session_revoked`` security event saying how.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, insert, or_, select, update

from service.db import Reader, Writer, record, records
from service.db.fast import live_sessions
from service.db.models import LoginSession, User
from service.errors import InvalidGrant, NotFound, Unauthorized
from service.security.events import security_event
from service.security.tokens import ACCESS_TYP, REFRESH_TYP, TokenError, VerifiedToken
from service.services import Services


class LogoutScope(enum.StrEnum):
    """Which sessions a logout ends."""

    LOCAL = "local"
    OTHERS = "others"
    GLOBAL = "global"


class SessionLike(Protocol):
    """The columns of a ``sessions`` row that the token rules read."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def refresh_jti(self) -> str: ...
    @property
    def previous_jti(self) -> str | None: ...
    @property
    def rotated_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def amr(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A login session as stored (a row of ``sessions``)."""

    id: uuid.UUID
    user_id: uuid.UUID
    refresh_jti: str
    previous_jti: str | None
    rotated_at: datetime | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    user_agent: str | None
    client_address: str | None
    amr: str


@dataclass(frozen=True, slots=True)
class IssuedPair:
    """A fresh access and refresh token of one session, and their lifetimes in seconds."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def is_live(session: SessionLike | None, user_id: uuid.UUID, now: datetime) -> bool:
    """Whether ``session`` exists, is ``user_id``'s, is not revoked and is within its lifetime.

    The rule of ``_live_conditions``, for a row already fetched.
    """
    return (
        session is not None
        and session.user_id == user_id
        and session.revoked_at is None
        and session.expires_at > now
    )


#: The answer to a refresh token that cannot be spent. Only reuse is told apart: its owner
#: must learn that the session ended (and log in again); a forged, expired or revoked token
#: gets one answer, so a guesser learns nothing more.
DEAD_DETAIL = "The refresh token is invalid, expired or revoked."
REUSED_DETAIL = (
    "The refresh token was already used, so its session has been ended for safety (a spent "
    "token presented again may have been stolen): log in again."
)


class RefreshDecision(enum.Enum):
    ROTATE = "rotate"
    REPEAT = "repeat"
    REUSED = "reused"
    DEAD = "dead"


def decide_refresh(
    session: SessionLike | None, token: VerifiedToken, now: datetime, reuse_interval: int
) -> RefreshDecision:
    """What presenting ``token`` for ``session`` means (RFC 9700 section 4.14.2).

    DEAD: no such live session of this user, or past its absolute lifetime. ROTATE: it is the
    current token: spend it. REPEAT: it is the one the current token replaced, less than
    ``reuse_interval`` seconds ago: answer with that same successor again. REUSED: any other
    token of the family, so one spent before: end the session.
    """
    if not is_live(session, token.user_id, now):
        return RefreshDecision.DEAD
    assert session is not None
    if session.refresh_jti == token.token_id:
        return RefreshDecision.ROTATE
    if (
        reuse_interval > 0
        and session.previous_jti == token.token_id
        and session.rotated_at is not None
        # Negative when this request started before the rotation it lost to committed.
        and now - session.rotated_at < timedelta(seconds=reuse_interval)
    ):
        return RefreshDecision.REPEAT
    return RefreshDecision.REUSED


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login came from, kept on the session for the owner to see."""

    user_agent: str | None
    address: str | None


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


#: RFC 8176 section 2 method names: a password login, and one completed with a TOTP code.
PASSWORD_AMR = "pwd"  # noqa: S105 - a method name, not a password
PASSWORD_AND_OTP_AMR = "pwd otp"  # noqa: S105 - method names


def _current_refresh(services: Services, session: SessionLike) -> str:
    """The session's current refresh token, re-signed from its ``jti`` and rotation time."""
    _, value = _refresh_token(
        services, session, token_id=session.refresh_jti, issued_at=session.rotated_at
    )
    return value


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session about to be stored: the columns the token rules need before the INSERT."""

    id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    refresh_jti: str = ""
    previous_jti: str | None = None
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    amr: str = PASSWORD_AMR


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
        await db.run(
            insert(LoginSession).values(
                id=session.id,
                user_id=session.user_id,
                refresh_jti=refresh_jti,
                created_at=now,
                last_used_at=now,
                expires_at=session.expires_at,
                user_agent=(client.user_agent or "")[:512] or None,
                client_address=(client.address or "")[:64] or None,
                amr=amr,
            )
        )
    return _token_pair(services, session, refresh, role)


async def active_role(db: Writer, user_id: uuid.UUID) -> str | None:
    """The stored role of the user if the account is active, else None; locks the user's row.

    The shared row lock (``FOR SHARE`` on PostgreSQL; SQLite has one writer at a time anyway)
    makes a session start and an admin disabling the account take turns: either the session
    is stored first and the disable revokes it, or the disable commits first and this sees
    the account inactive. Without it a login racing with a disable could keep a session.
    """
    query = (
        select(User.role)
        .where(User.id == user_id, User.is_active.is_(True))
        .with_for_update(read=True)
    )
    role: str | None = await db.scalar(query)
    return role


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
            if await _swap_refresh_jti(db, session.id, token.token_id, refresh_jti, now):
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


def proves_live_session(session: SessionLike | None, token: VerifiedToken, now: datetime) -> bool:
    """Whether ``token`` belongs to a live session and may act for it on other sessions.

    An access token proves it while its session is live (as for any protected route); a
    refresh token only while it is the session's unspent one.
    """
    if not is_live(session, token.user_id, now):
        return False
    assert session is not None
    return token.typ != REFRESH_TYP or session.refresh_jti == token.token_id


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


def _live_conditions(user_id: Any, now: Any) -> list[Any]:
    """The WHERE conditions of the user's live sessions (values or bind parameters)."""
    return [
        LoginSession.user_id == user_id,
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > now,
    ]


#: Asked on every authenticated request, so built once.
_SELECT_LIVE_SESSION = select(LoginSession.expires_at).where(
    LoginSession.id == bindparam("session_id"),
    *_live_conditions(bindparam("user_id"), bindparam("now")),
)
_SELECT_SESSION = select(LoginSession).where(LoginSession.id == bindparam("session_id"))


async def live_session_end(
    db: Reader, session_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> datetime | None:
    """When the session ends, if it exists for this user and is neither revoked nor past its
    end at ``now``; else None.

    Checked for every access token (or remembered, ``service.db.fast.live_sessions``), so that
    logging out, a password change, refresh-token reuse or deleting the account stops the
    session's access tokens at once.
    """
    params = {"session_id": session_id, "user_id": user_id, "now": now}
    row = await db.first(_SELECT_LIVE_SESSION, params)
    return None if row is None else row["expires_at"]


async def announce_revoked(db: Writer, user_id: uuid.UUID) -> None:
    """Tell every worker, once this transaction commits, to forget the sessions it remembers
    as live for ``user_id`` (``service.db.fast.live_sessions``). Every write that ends sessions
    (revoking them, deleting the account) calls this in its own transaction."""
    await db.announce(live_sessions.CHANNEL, live_sessions.notice(user_id))


async def select_session(db: Reader, session_id: uuid.UUID) -> SessionRecord | None:
    return record(SessionRecord, await db.first(_SELECT_SESSION, {"session_id": session_id}))


async def _swap_refresh_jti(
    db: Writer, session_id: uuid.UUID, spent: str, successor: str, now: datetime
) -> bool:
    """Make ``successor`` the live token only if ``spent`` still is: an atomic check-and-set.

    ``spent`` is kept as ``previous_jti`` and ``now`` as ``rotated_at`` (the successor's
    ``iat``), for a repeat within the reuse interval.
    """
    swapped = await db.run(
        update(LoginSession)
        .where(
            LoginSession.id == session_id,
            LoginSession.refresh_jti == spent,
            LoginSession.revoked_at.is_(None),
        )
        .values(refresh_jti=successor, previous_jti=spent, rotated_at=now, last_used_at=now)
    )
    return swapped == 1


async def select_live_sessions(db: Reader, user_id: uuid.UUID) -> list[SessionRecord]:
    """The user's sessions that are neither revoked nor past their end, newest first."""
    rows = await db.all(
        select(LoginSession)
        .where(*_live_conditions(user_id, datetime.now(UTC)))
        .order_by(LoginSession.created_at.desc(), LoginSession.id.desc())
    )
    return records(SessionRecord, rows)


async def touch_live_session(
    db: Writer, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> bool:
    """Mark a live session as used now; False if it is not live (any more).

    Inside a write transaction this also locks the row, so a revocation racing with the
    caller's transaction either happens before it (False) or waits until it commits.
    """
    touched = await db.run(
        update(LoginSession)
        .where(LoginSession.id == session_id, *_live_conditions(user_id, now))
        .values(last_used_at=now)
    )
    return touched == 1


async def revoke_sessions(
    db: Writer,
    user_id: uuid.UUID,
    now: datetime,
    *,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke the user's live sessions (just ``only``, or all but ``keep``); their ids."""
    conditions = _live_conditions(user_id, now)
    if only is not None:
        conditions.append(LoginSession.id == only)
    if keep is not None:
        conditions.append(LoginSession.id != keep)
    rows = await db.all(
        update(LoginSession).where(*conditions).values(revoked_at=now).returning(LoginSession.id)
    )
    if rows:
        await announce_revoked(db, user_id)
    return [row["id"] for row in rows]


async def delete_ended_sessions(db: Writer, ended_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` sessions that expired or were revoked before ``ended_before``;
    how many went. Live sessions never qualify (``service purge``)."""
    ended = (
        select(LoginSession.id)
        .where(or_(LoginSession.expires_at < ended_before, LoginSession.revoked_at < ended_before))
        .limit(limit)
    )
    return await db.run(delete(LoginSession).where(LoginSession.id.in_(ended)))
