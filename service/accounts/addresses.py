"""The email columns of accounts: who holds an address, who claims it, and changes to them.

Addresses arrive in their canonical form (``service.security.email_addresses``, through the
schemas' ``EmailAddress``) and are compared by ``email_key``. An unverified address is a
claim, which any number of accounts may make; a verified one belongs to one account (the
partial unique index ``ix_users_verified_email_key``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update

from service.accounts.queries import UserRecord
from service.db import Reader, Writer, record, records
from service.db.models import User
from service.security.email_addresses import email_key

_SELECT_HOLDER = select(User).where(
    User.email_key == bindparam("email_key"), User.email_verified_at.is_not(None)
)


@dataclass(frozen=True, slots=True)
class Claim:
    """An account that has the address, verified (its holder) or not (a claim)."""

    id: uuid.UUID
    username: str
    email: str
    email_verified_at: datetime | None


async def select_holder(db: Reader, email: str) -> UserRecord | None:
    """The account whose verified address ``email`` is, if one is."""
    return record(UserRecord, await db.first(_SELECT_HOLDER, {"email_key": email_key(email)}))


async def select_claims_for_update(db: Writer, key: str) -> list[Claim]:
    """Every account with the address of key ``key``, their rows locked until the transaction
    ends, always in id order (PostgreSQL; SQLite has one writer): two verifications of one
    address take turns instead of deadlocking."""
    query = (
        select(User.id, User.username, User.email, User.email_verified_at)
        .where(User.email_key == key)
        .order_by(User.id)
        .with_for_update()
    )
    return records(Claim, await db.all(query))


async def update_email(db: Writer, user_id: uuid.UUID, email: str) -> None:
    """Give the account a new address, unverified: a claim until its link is followed."""
    await db.run(
        update(User)
        .where(User.id == user_id)
        .values(email=email, email_key=email_key(email), email_verified_at=None)
    )


async def update_email_spelling(db: Writer, user_id: uuid.UUID, email: str) -> None:
    """Write the account's address as ``email``, the same address in other letter case."""
    await db.run(update(User).where(User.id == user_id).values(email=email))


async def update_email_verified(db: Writer, user_id: uuid.UUID, key: str, now: datetime) -> None:
    """Mark the account's address verified (the caller holds the claims' locks)."""
    await db.run(
        update(User)
        .where(User.id == user_id, User.email_key == key, User.email_verified_at.is_(None))
        .values(email_verified_at=now)
    )


async def delete_claims(db: Writer, user_ids: list[uuid.UUID]) -> None:
    """Take the unverified address off these accounts: another account verified it."""
    if user_ids:
        await db.run(
            update(User)
            .where(User.id.in_(user_ids), User.email_verified_at.is_(None))
            .values(email=None, email_key=None)
        )
