"""The SQL of accounts (the ``users`` table): case-insensitive usernames, one function per
statement. The address columns are ``service.accounts.addresses``'."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from service.db import Reader, Writer, record
from service.db.models import User
from service.errors import Conflict
from service.security.email_addresses import email_key
from service.security.roles import Role
from service.sessions.queries import announce_revoked


@dataclass(frozen=True, slots=True)
class UserRecord:
    """An account as stored (a row of ``users``)."""

    id: uuid.UUID
    username: str
    username_key: str
    password_hash: str
    created_at: datetime
    role: str
    is_active: bool
    email: str | None = None
    email_key: str | None = None
    email_verified_at: datetime | None = None

    @property
    def email_verified(self) -> bool:
        return self.email is not None and self.email_verified_at is not None


USERNAME_TAKEN = "This username is already taken."


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


async def insert_user(
    db: Writer,
    username: str,
    password_hash: str,
    email: str | None = None,
    role: Role = Role.USER,
) -> UserRecord:
    """Add an active account; ``Conflict`` if the username is taken in any letter case. The
    optional ``email`` (canonical) starts unverified: a claim, whoever else has it."""
    key = None if email is None else email_key(email)
    try:
        user = await db.first(
            insert(User)
            .values(
                id=uuid.uuid4(),
                username=username,
                username_key=username_key(username),
                password_hash=password_hash,
                created_at=datetime.now(UTC),
                email=email,
                email_key=key,
                role=role.value,
                is_active=True,
            )
            .returning(User)
        )
    except IntegrityError:  # its unique index refused the username
        raise Conflict(USERNAME_TAKEN) from None
    assert user is not None
    found = record(UserRecord, user)
    assert found is not None
    return found


async def update_password_hash(db: Writer, user_id: uuid.UUID, password_hash: str) -> None:
    await db.run(update(User).where(User.id == user_id).values(password_hash=password_hash))


async def delete_user(db: Writer, user_id: uuid.UUID) -> bool:
    """Delete the account; its sessions, items and tokens go with it (``ON DELETE CASCADE``),
    and the revocation is announced to every worker at commit. False if there was none."""
    if await db.run(delete(User).where(User.id == user_id)) != 1:
        return False
    await announce_revoked(db, user_id)
    return True
