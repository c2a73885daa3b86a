"""Account queries and rules: case-insensitive usernames, login, password change, deletion."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from service.auth import sessions
from service.db import Reader, Writer, record
from service.db.models import User
from service.errors import Conflict, InvalidGrant, NotFound, Unauthorized, ValidationFailed
from service.security.events import security_event
from service.security.passwords import RULE_SENTENCES, SAME_AS_USERNAME, is_username
from service.services import Services


@dataclass(frozen=True, slots=True)
class UserRecord:
    """An account as stored (a row of ``users``)."""

    id: uuid.UUID
    username: str
    username_key: str
    password_hash: str
    created_at: datetime


#: Asked at every login and by every authenticated password check: built once.
_SELECT_BY_KEY = select(User).where(User.username_key == bindparam("username_key"))
_SELECT_BY_ID = select(User).where(User.id == bindparam("user_id"))


def username_key(username: str) -> str:
    """The form in which usernames must be unique: ``John`` and ``john`` are one account."""
    return username.casefold()


async def select_user(db: Reader, user_id: uuid.UUID) -> UserRecord | None:
    return record(UserRecord, await db.first(_SELECT_BY_ID, {"user_id": user_id}))


async def select_user_by_username(db: Reader, username: str) -> UserRecord | None:
    key = username_key(username)
    return record(UserRecord, await db.first(_SELECT_BY_KEY, {"username_key": key}))


async def insert_user(db: Writer, username: str, password_hash: str) -> UserRecord:
    """Add an account; ``Conflict`` if the username is taken in any letter case."""
    try:
        user = await db.first(
            insert(User)
            .values(
                id=uuid.uuid4(),
                username=username,
                username_key=username_key(username),
                password_hash=password_hash,
                created_at=datetime.now(UTC),
            )
            .returning(User)
        )
    except IntegrityError:
        raise Conflict("This username is already taken.") from None
    assert user is not None
    return UserRecord(**user)


async def update_password_hash(db: Writer, user_id: uuid.UUID, password_hash: str) -> None:
    await db.run(update(User).where(User.id == user_id).values(password_hash=password_hash))


async def register(services: Services, username: str, password: str) -> UserRecord:
    """Create an account; the password is hashed before any database work starts."""
    password_hash = await services.passwords.hash(password)
    async with services.db.write() as db:
        return await insert_user(db, username, password_hash)


async def check_password(services: Services, username: str, password: str) -> UserRecord:
    """The account whose password this is, else ``InvalidGrant``.

    An unknown username and a wrong password fail alike, in the same time and with the same
    error, so the answer does not reveal which usernames exist. A hash made with fewer bcrypt
    rounds than configured is replaced. No connection is held while bcrypt runs.
    """
    async with services.db.read() as db:
        user = await select_user_by_username(db, username)
    if user is None:
        await services.passwords.verify_nothing(password)
        security_event("login_failed", level=logging.WARNING, reason="unknown_user")
        raise InvalidGrant("Invalid username or password.")
    outcome = await services.passwords.verify(password, user.password_hash)
    if not outcome.ok:
        security_event(
            "login_failed", level=logging.WARNING, user_id=user.id, reason="wrong_password"
        )
        raise InvalidGrant("Invalid username or password.")
    if outcome.new_hash is not None:
        async with services.db.write() as db:
            await update_password_hash(db, user.id, outcome.new_hash)
    return user


async def change_password(
    services: Services,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    current_password: str,
    new_password: str,
) -> None:
    """Replace the password and end every other session of the user.

    The schema has applied the length and common-password rules; the username rule is
    applied here. A wrong current password is a ``ValidationFailed`` on ``current_password``,
    not a 401: the caller's tokens are fine and a client must not throw them away. A wrong
    current password is a password guess too: it counts against the username's brute-force
    limit, shared with ``/login`` (429 while it holds). The calling session stays live, and is
    checked again in the transaction that stores the hash, so a logout racing with the change
    wins.
    """
    async with services.db.read() as db:
        user = await select_user(db, user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    if is_username(new_password, user.username):
        raise ValidationFailed(
            RULE_SENTENCES[SAME_AS_USERNAME],
            errors=[{"field": "new_password", "message": SAME_AS_USERNAME}],
        )
    async with services.limits.password_attempt(
        user.username_key, address=None, failure=ValidationFailed
    ):
        if not (await services.passwords.verify(current_password, user.password_hash)).ok:
            security_event(
                "password_change_failed",
                level=logging.WARNING,
                user_id=user_id,
                session_id=session_id,
                reason="wrong_current_password",
            )
            raise ValidationFailed(
                "The current password is wrong.",
                errors=[{"field": "current_password", "message": "is not the current password"}],
            )
    new_hash = await services.passwords.hash(new_password)
    now = datetime.now(UTC)
    async with services.db.write() as db:
        if not await sessions.touch_live_session(db, user_id, session_id, now):
            raise Unauthorized("The session of this access token has ended.", token_presented=True)
        await update_password_hash(db, user_id, new_hash)
        revoked = await sessions.revoke_sessions(db, user_id, now, keep=session_id)
    security_event("password_changed", user_id=user_id, session_id=session_id)
    sessions.log_revoked(user_id, revoked, how="password_change")


async def delete_account(services: Services, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Delete the user; their sessions and items go with them (``ON DELETE CASCADE``)."""
    async with services.db.write() as db:
        live = [session.id for session in await sessions.select_live_sessions(db, user_id)]
        deleted = await db.run(delete(User).where(User.id == user_id))
    if not deleted:
        raise NotFound("The account no longer exists.")
    security_event("account_deleted", user_id=user_id, session_id=session_id)
    sessions.log_revoked(user_id, live, how="account_deleted")
