"""Idempotency-key queries: find a live key, claim one in a write, store the answer it gave.

A key is claimed by inserting its row in the very transaction of the write it guards, and its
answer is stored in that transaction too: the write and its key commit together or not at all.
The primary key (scope, key) is the guard against two concurrent first requests: the second
insert waits for the first transaction (PostgreSQL's unique index; SQLite's single writer)
and then fails, so exactly one of them does the work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from service.db import Reader, Writer, record
from service.db.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as stored (a row of ``idempotency_keys``); ``status`` is set once it committed."""

    scope: str
    key: str
    owner_id: uuid.UUID | None
    fingerprint: str
    status: int | None
    headers: str | None
    body: str | None
    created_at: datetime
    expires_at: datetime


class KeyTaken(Exception):
    """Another request claimed the key first (and committed)."""


_SELECT_LIVE_KEY = select(IdempotencyKey).where(
    IdempotencyKey.scope == bindparam("scope"),
    IdempotencyKey.key == bindparam("key"),
    IdempotencyKey.expires_at > bindparam("now"),
)


async def select_live_key(db: Reader, scope: str, key: str, now: datetime) -> KeyRecord | None:
    """The key's record unless it has expired (an expired key is as good as never used)."""
    params = {"scope": scope, "key": key, "now": now}
    return record(KeyRecord, await db.first(_SELECT_LIVE_KEY, params))


async def claim_key(
    db: Writer,
    scope: str,
    key: str,
    *,
    owner_id: uuid.UUID | None,
    fingerprint: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Insert the key's row, first replacing an expired one; ``KeyTaken`` if it is live."""
    await db.run(
        delete(IdempotencyKey).where(
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= now,
        )
    )
    try:
        await db.run(
            insert(IdempotencyKey).values(
                scope=scope,
                key=key,
                owner_id=owner_id,
                fingerprint=fingerprint,
                created_at=now,
                expires_at=expires_at,
            )
        )
    except IntegrityError:
        raise KeyTaken from None


async def store_answer(
    db: Writer, scope: str, key: str, *, status: int, headers: str, body: str
) -> None:
    """Record the answer of the claimed key, in the transaction that claimed it."""
    await db.run(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(status=status, headers=headers, body=body)
    )


async def delete_expired_keys(db: Writer, now: datetime, limit: int) -> int:
    """Delete up to ``limit`` keys that expired by ``now``; how many went (``service purge``).

    An expired key is never replayed, so nothing is lost; a request reusing it meanwhile
    inserts a row of its own, which this leaves alone.
    """
    expired = (
        select(IdempotencyKey.scope, IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= now)
        .limit(limit)
    )
    columns = tuple_(IdempotencyKey.scope, IdempotencyKey.key)
    return await db.run(delete(IdempotencyKey).where(columns.in_(expired)))
