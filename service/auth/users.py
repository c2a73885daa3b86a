"""Account queries and the account rules: case-insensitive usernames, login by password."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import Conflict, InvalidGrant
from service.extensions import Services
from service.models import User


def username_key(username: str) -> str:
    """The form in which usernames must be unique: ``John`` and ``john`` are one account."""
    return username.casefold()


async def select_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def select_user_by_username(session: AsyncSession, username: str) -> User | None:
    found = await session.execute(select(User).where(User.username_key == username_key(username)))
    return found.scalar_one_or_none()


async def insert_user(session: AsyncSession, username: str, password_hash: str) -> User:
    """Add an account; ``Conflict`` if the username is taken in any letter case."""
    user = User(username=username, username_key=username_key(username), password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("This username is already taken.") from None
    return user


async def update_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))


async def register(services: Services, username: str, password: str) -> User:
    """Create an account; the password is hashed before any database work starts."""
    password_hash = await services.passwords.hash(password)
    async with services.db.write() as session:
        return await insert_user(session, username, password_hash)


async def check_password(services: Services, username: str, password: str) -> User:
    """The account whose password this is, else ``InvalidGrant``.

    An unknown username and a wrong password fail alike, in the same time and with the same
    error, so the answer does not reveal which usernames exist. A hash made with fewer bcrypt
    rounds than configured is replaced. No connection is held while bcrypt runs.
    """
    async with services.db.read() as session:
        user = await select_user_by_username(session, username)
    if user is None:
        await services.passwords.verify_nothing(password)
        raise InvalidGrant("Invalid username or password.")
    outcome = await services.passwords.verify(password, user.password_hash)
    if not outcome.ok:
        raise InvalidGrant("Invalid username or password.")
    if outcome.new_hash is not None:
        async with services.db.write() as session:
            await update_password_hash(session, user.id, outcome.new_hash)
    return user
