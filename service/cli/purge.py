"""``service purge``: delete the rows nobody needs any more, a batch at a time.

Each kind of row is one ``PurgeStep`` in ``PURGE_STEPS``: a name and a function that deletes
up to a batch of that kind's dead rows in a write transaction and says how many. The purge runs
each step until a batch comes back short, every batch its own short transaction, so it can run
while the service serves (a Heroku Scheduler job): no lock is held for long, and requests get
their turn between batches. Running it again deletes nothing new: it is idempotent.

- ``sessions``: sessions that expired or were revoked more than ``PURGE_AFTER`` ago. Until
  then they stay, as a record of the logins an account had.
- ``idempotency_keys``: keys past their expiry, which are never replayed again.
- ``account_tokens``: email verification and password reset tokens that expired or were
  superseded (spent ones are deleted when spent).
- ``outbox``: email sent or given up more than ``PURGE_AFTER`` ago (their bodies, which may hold
  a one-time link, were erased at once; the row stays as a record of what was sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.accounts import tokens as account_tokens
from service.config import Settings
from service.db import Writer
from service.idempotency import queries as idempotency_queries
from service.mail import outbox
from service.services import Services
from service.sessions.queries import delete_ended_sessions

#: Rows deleted per transaction: small enough to hold locks for milliseconds.
DEFAULT_BATCH_SIZE = 1000

#: ``(db, now, settings, limit) -> rows deleted``: one batch of one kind.
DeleteBatch = Callable[[Writer, datetime, Settings, int], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class PurgeStep:
    """One kind of row to purge: its name in the report and how to delete a batch of it."""

    name: str
    delete_batch: DeleteBatch


async def _ended_sessions(db: Writer, now: datetime, settings: Settings, limit: int) -> int:
    cutoff = now - timedelta(seconds=settings.purge_after)
    return await delete_ended_sessions(db, cutoff, limit)


async def _expired_idempotency_keys(
    db: Writer, now: datetime, settings: Settings, limit: int
) -> int:
    return await idempotency_queries.delete_expired_keys(db, now, limit)


async def _dead_account_tokens(db: Writer, now: datetime, settings: Settings, limit: int) -> int:
    return await account_tokens.delete_spent_tokens(db, now)


async def _finished_mail(db: Writer, now: datetime, settings: Settings, limit: int) -> int:
    return await outbox.delete_delivered(db, now - timedelta(seconds=settings.purge_after))


#: What ``service purge`` deletes, in this order; another kind of row is one more step.
PURGE_STEPS: tuple[PurgeStep, ...] = (
    PurgeStep("sessions", _ended_sessions),
    PurgeStep("idempotency_keys", _expired_idempotency_keys),
    PurgeStep("account_tokens", _dead_account_tokens),
    PurgeStep("outbox", _finished_mail),
)


async def purge(
    services: Services,
    *,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    steps: tuple[PurgeStep, ...] = PURGE_STEPS,
) -> dict[str, int]:
    """Run every step to the end; the rows deleted, by step name."""
    moment = now or datetime.now(UTC)
    counts: dict[str, int] = {}
    for step in steps:
        total = 0
        while True:
            async with services.db.write() as db:
                deleted = await step.delete_batch(db, moment, services.settings, batch_size)
            total += deleted
            if deleted < batch_size:
                break
            await asyncio.sleep(0)  # let the requests of this process have the database
        counts[step.name] = total
    return counts
