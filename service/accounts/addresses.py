"""The email columns of an account: look up by address, change the address, mark it verified.

Addresses arrive normalised by ``email-validator`` (through the schemas' ``EmailStr``) and are
unique by ``email_key``, their case-folded form.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from service.auth.users import EMAIL_TAKEN, UserRecord
from service.db import Reader, Writer, record
from service.db.models import User
from service.errors import Conflict
from service.security.email_addresses import email_key

_SELECT_BY_EMAIL = select(User).where(User.email_key == bindparam("email_key"))


async def select_user_by_email(db: Reader, email: str) -> UserRecord | None:
    return record(UserRecord, await db.first(_SELECT_BY_EMAIL, {"email_key": email_key(email)}))


async def update_email(db: Writer, user_id: uuid.UUID, email: str) -> None:
    """Give the account a new, unverified address; ``Conflict`` if another account has it."""
    key = email_key(email)
    taken = select(User.id).where(User.email_key == key, User.id != user_id)
    if await db.scalar(taken) is not None:
        raise Conflict(EMAIL_TAKEN)
    try:
        await db.run(
            update(User)
            .where(User.id == user_id)
            .values(email=email, email_key=key, email_verified_at=None)
        )
    except IntegrityError:  # another account took it meanwhile
        raise Conflict(EMAIL_TAKEN) from None


async def update_email_spelling(db: Writer, user_id: uuid.UUID, email: str) -> None:
    """Write the account's address as ``email``, the same address in other letter case."""
    await db.run(update(User).where(User.id == user_id).values(email=email))


async def update_email_verified(
    db: Writer, user_id: uuid.UUID, address_key: str, now: datetime
) -> bool:
    """Mark the address verified if it is still ``address_key``; whether it was."""
    return bool(
        await db.run(
            update(User)
            .where(User.id == user_id, User.email_key == address_key)
            .values(email_verified_at=now)
        )
    )
