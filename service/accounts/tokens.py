"""Storage of the one-time account tokens (``account_tokens``): issue, spend, purge.

Only the SHA-256 of a value is stored (``service.security.tokens.account``). A token is spent
by deleting its row with ``DELETE ... RETURNING``: of two requests with one token exactly one
gets the row, on SQLite and PostgreSQL alike, so a token works once. Issuing a token deletes
the account's older ones of the same purpose: only the newest link works.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, insert, or_, select

from service.db import Reader, Writer
from service.db.models import AccountToken, User
from service.security.tokens.account import Purpose, new_token, token_digest


@dataclass(frozen=True, slots=True)
class SpentToken:
    """What a spent token was issued for: the account and its binding (see the model)."""

    user_id: uuid.UUID
    binding: str


async def insert_token(
    db: Writer,
    user_id: uuid.UUID,
    purpose: Purpose,
    binding: str,
    *,
    now: datetime,
    ttl: int,
) -> str:
    """Issue a token for the account, superseding its older ones of ``purpose``; the value."""
    await delete_tokens(db, user_id, purpose)
    value, digest = new_token()
    await db.run(
        insert(AccountToken).values(
            token_hash=digest,
            user_id=user_id,
            purpose=purpose.value,
            binding=binding,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    return value


async def delete_token_returning(
    db: Writer, value: str, purpose: Purpose, now: datetime
) -> SpentToken | None:
    """Spend the token: its row is deleted; what it was for, if it existed and had not expired.

    A token of another purpose is left alone and is None, as an unknown one is.
    """
    row = await db.first(
        delete(AccountToken)
        .where(AccountToken.token_hash == token_digest(value), AccountToken.purpose == purpose)
        .returning(AccountToken.user_id, AccountToken.binding, AccountToken.expires_at)
    )
    if row is None or row["expires_at"] <= now:
        return None
    return SpentToken(row["user_id"], row["binding"])


async def select_live_token(
    db: Reader, value: str, purpose: Purpose, now: datetime
) -> SpentToken | None:
    """What a live token of ``purpose`` is for, without spending it."""
    row = await db.first(
        select(AccountToken.user_id, AccountToken.binding).where(
            AccountToken.token_hash == token_digest(value),
            AccountToken.purpose == purpose,
            AccountToken.expires_at > now,
        )
    )
    return None if row is None else SpentToken(row["user_id"], row["binding"])


async def delete_tokens(db: Writer, user_id: uuid.UUID, purpose: Purpose) -> int:
    """Kill every token of ``purpose`` of the account; how many there were."""
    return await db.run(
        delete(AccountToken).where(AccountToken.user_id == user_id, AccountToken.purpose == purpose)
    )


async def delete_spent_tokens(db: Writer, before: datetime) -> int:
    """Delete tokens that can no longer be used; how many (for ``service purge``).

    Spent tokens are gone already; this deletes those that expired before ``before`` and the
    verification tokens of an address the account no longer has (superseded by a change).
    Reset tokens superseded by a password change die by their binding and go once expired.
    """
    current_address = exists(
        select(User.id).where(
            User.id == AccountToken.user_id, User.email_key == AccountToken.binding
        )
    )
    return await db.run(
        delete(AccountToken).where(
            or_(
                AccountToken.expires_at < before,
                and_(AccountToken.purpose == Purpose.VERIFY_EMAIL, ~current_address),
            )
        )
    )
