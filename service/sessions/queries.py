"""The SQL of login sessions (the ``sessions`` table), one function per statement, the user in
every ``WHERE`` that acts for one.

Every write that ends sessions announces it (``announce_revoked``) in its own transaction, so
that the live-session memory of every worker forgets them (``service.db.fast.live_sessions``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update

from service.db import Reader, Writer, record, records
from service.db.fast import live_sessions
from service.db.models import LoginSession, User
from service.sessions.rules import ClientInfo, NewSession, SessionRecord


def live_conditions(user_id: Any, now: Any) -> list[Any]:
    """The WHERE conditions of the user's live sessions (values or bind parameters)."""
    return [
        LoginSession.user_id == user_id,
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > now,
    ]


#: Asked on every authenticated request, so built once.
_SELECT_LIVE_SESSION = select(LoginSession.expires_at).where(
    LoginSession.id == bindparam("session_id"),
    *live_conditions(bindparam("user_id"), bindparam("now")),
)
_SELECT_SESSION = select(LoginSession).where(LoginSession.id == bindparam("session_id"))


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


async def insert_session(
    db: Writer, session: NewSession, refresh_jti: str, client: ClientInfo, now: datetime
) -> None:
    """Store a new session whose first refresh token has ``refresh_jti``."""
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
            amr=session.amr,
        )
    )


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


async def swap_refresh_jti(
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
        .where(*live_conditions(user_id, datetime.now(UTC)))
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
        .where(LoginSession.id == session_id, *live_conditions(user_id, now))
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
    conditions = live_conditions(user_id, now)
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
