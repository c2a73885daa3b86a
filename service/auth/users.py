"""Account queries and the account rules: case-insensitive usernames, login by password."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from service.db import Reader, Writer
from service.errors import Conflict, InvalidGrant
from service.extensions import Services
from service.models import User

UserRow = Row[Any]


def username_key(username: str) -> str:
    """The form in which usernames must be unique: ``John`` and ``john`` are one account."""
    return username.casefold()


async def select_user(db: Reader, user_id: uuid.UUID) -> UserRow | None:
    return await db.one(select(User).where(User.id == user_id))


async def select_user_by_username(db: Reader, username: str) -> UserRow | None:
    return await db.one(select(User).where(User.username_key == username_key(username)))


async def insert_user(db: Writer, username: str, password_hash: str) -> UserRow:
    """Add an account; ``Conflict`` if the username is taken in any letter case."""
    try:
        user = await db.one(
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
    return user


async def update_password_hash(db: Writer, user_id: uuid.UUID, password_hash: str) -> None:
    await db.run(update(User).where(User.id == user_id).values(password_hash=password_hash))


async def register(services: Services, username: str, password: str) -> UserRow:
    """Create an account; the password is hashed before any database work starts."""
    password_hash = await services.passwords.hash(password)
    async with services.db.write() as db:
        return await insert_user(db, username, password_hash)


async def check_password(services: Services, username: str, password: str) -> UserRow:
    """The account whose password this is, else ``InvalidGrant``.

    An unknown username and a wrong password fail alike, in the same time and with the same
    error, so the answer does not reveal which usernames exist. A hash made with fewer bcrypt
    rounds than configured is replaced. No connection is held while bcrypt runs.
    """
    async with services.db.read() as db:
        user = await select_user_by_username(db, username)
    if user is None:
        await services.passwords.verify_nothing(password)
        raise InvalidGrant("Invalid username or password.")
    outcome = await services.passwords.verify(password, user.password_hash)
    if not outcome.ok:
        raise InvalidGrant("Invalid username or password.")
    if outcome.new_hash is not None:
        async with services.db.write() as db:
            await update_password_hash(db, user.id, outcome.new_hash)
    return user
