"""The transactional outbox: emails written with the change that causes them, sent afterwards.

``enqueue`` renders a template and inserts the message into ``outbox`` through the caller's
``Writer``: the message exists if and only if the caller's transaction commits (a signup that
fails after queueing its welcome mail sends nothing), and nothing waits for SMTP while the
transaction is open. Once it commits, the sender of this process is woken at once
(``Writer.notify_after_commit``); senders elsewhere find the row when they next poll.

The other functions are the sender's queue (``service.mail.sender``): ``claim_due`` takes a
batch of due rows under a lease, in one statement: ``WITH due AS MATERIALIZED (SELECT ...
LIMIT n FOR UPDATE SKIP LOCKED) UPDATE ... WHERE id IN (SELECT id FROM due) RETURNING`` on
PostgreSQL, so concurrent senders skip each other's rows instead of waiting. SQLite has no
row locks and renders no ``FOR UPDATE``, but its write transactions are serialised (``BEGIN
IMMEDIATE``), so the same ``UPDATE ... RETURNING`` is an atomic claim there. A claim moves
``available_at`` forward by the lease: if the sender dies, the row becomes due again and
another sender retries it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update

from service.db import Reader, Writer, records
from service.db.models import OutboxMessage
from service.mail.templates import render
from service.security.mailboxes import single_mailbox

#: The ``Notices`` channel that wakes the senders of this process.
OUTBOX_CHANNEL = "outbox"
PENDING, SENT, FAILED = "pending", "sent", "failed"
#: Longest ``last_error`` kept (the column's size).
_ERROR_LENGTH = 1000
#: Longest address SMTP carries (RFC 5321 section 4.5.3.1: 64 + 1 + 255).
_ADDRESS_LENGTH = 320


def public_link(base_url: str, path: str, /, **query: str) -> str:
    """An absolute link for an email: ``PUBLIC_BASE_URL`` + ``path`` + the encoded ``query``.

    ``public_link(settings.link_base, "/verify", token=t)`` is
    ``https://api.example/verify?token=...``.
    """
    if not path.startswith("/"):
        raise ValueError("the path of a link starts with /")
    link = base_url.rstrip("/") + path
    return f"{link}?{urlencode(query)}" if query else link


async def enqueue(db: Writer, *, to: str, template: str, context: Mapping[str, str]) -> None:
    """Queue the email ``template`` rendered with ``context`` for ``to``, in ``db``'s transaction.

    ``ValueError`` for a recipient that is not one mailbox; Jinja2's errors for a missing
    template or variable. Either way the caller's transaction fails with it: better no change
    than a change whose email can never be written.
    """
    recipient = str(single_mailbox(to.strip()))
    if len(recipient) > _ADDRESS_LENGTH:
        raise ValueError(f"an address has at most {_ADDRESS_LENGTH} characters")
    mail = render(template, context)
    now = datetime.now(UTC)
    await db.run(
        insert(OutboxMessage).values(
            id=uuid.uuid4(),
            recipient=recipient,
            template=template,
            subject=mail.subject,
            text_body=mail.text,
            html_body=mail.html,
            status=PENDING,
            attempts=0,
            available_at=now,
            created_at=now,
        )
    )
    db.notify_after_commit(OUTBOX_CHANNEL)


async def delete_delivered(db: Writer, before: datetime) -> int:
    """Delete the rows finished (sent or given up) before ``before``; how many there were.

    Pending rows are never deleted, however old: they are mail someone is still owed.
    """
    return await db.run(
        delete(OutboxMessage).where(
            OutboxMessage.status.in_((SENT, FAILED)), OutboxMessage.finished_at < before
        )
    )


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    """A due message a sender holds under a lease; ``attempts`` counts this one."""

    id: uuid.UUID
    recipient: str
    template: str
    subject: str
    text_body: str
    html_body: str
    attempts: int
    claim: str


async def claim_due(
    db: Writer, *, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedMail]:
    """Take up to ``limit`` due messages, oldest due first, for ``lease`` (see the module doc)."""
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == PENDING, OutboxMessage.available_at <= now)
        .order_by(OutboxMessage.available_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        # Evaluated once: as a subquery PostgreSQL may run it again per row, each run
        # locking further rows, and the UPDATE would claim more than ``limit``.
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    rows = await db.all(
        update(OutboxMessage)
        .add_cte(due)
        .where(OutboxMessage.id.in_(select(due.c.id)), OutboxMessage.status == PENDING)
        .values(
            available_at=now + lease,
            claim=secrets.token_hex(16),
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(
            OutboxMessage.id,
            OutboxMessage.recipient,
            OutboxMessage.template,
            OutboxMessage.subject,
            OutboxMessage.text_body,
            OutboxMessage.html_body,
            OutboxMessage.attempts,
            OutboxMessage.claim,
        )
    )
    return records(ClaimedMail, rows)


_NEXT_DUE = select(func.min(OutboxMessage.available_at)).where(OutboxMessage.status == PENDING)


async def select_next_due(db: Reader) -> datetime | None:
    """When the earliest pending message becomes due (or its lease ends); None if none is."""
    found: datetime | None = await db.scalar(_NEXT_DUE)
    return found


async def update_sent(db: Writer, mail: ClaimedMail, now: datetime) -> int:
    """Mark ``mail`` delivered and erase its bodies (even if its lease ran out meanwhile: it
    did go out, and a second sender that took it over will find it done)."""
    return await db.run(
        update(OutboxMessage)
        .where(OutboxMessage.id == mail.id, OutboxMessage.status == PENDING)
        .values(
            status=SENT,
            finished_at=now,
            text_body=None,
            html_body=None,
            claim=None,
            last_error=None,
        )
    )


async def update_retry(db: Writer, mail: ClaimedMail, *, at: datetime, error: str) -> int:
    """Make ``mail`` due again at ``at``, if this sender still holds it."""
    return await db.run(
        update(OutboxMessage)
        .where(_held(mail))
        .values(available_at=at, claim=None, last_error=error[:_ERROR_LENGTH])
    )


async def update_released(db: Writer, mail: ClaimedMail, now: datetime) -> int:
    """Hand ``mail`` back untried (its sender is stopping): due at once, the attempt uncounted."""
    return await db.run(
        update(OutboxMessage)
        .where(_held(mail))
        .values(available_at=now, claim=None, attempts=OutboxMessage.attempts - 1)
    )


async def update_given_up(db: Writer, mail: ClaimedMail, *, now: datetime, error: str) -> int:
    """Give ``mail`` up for good and erase its bodies, if this sender still holds it."""
    return await db.run(
        update(OutboxMessage)
        .where(_held(mail))
        .values(
            status=FAILED,
            finished_at=now,
            text_body=None,
            html_body=None,
            claim=None,
            last_error=error[:_ERROR_LENGTH],
        )
    )


def _held(mail: ClaimedMail) -> ColumnElement[bool]:
    """The row of ``mail`` while this sender's claim on it stands."""
    return and_(
        OutboxMessage.id == mail.id,
        OutboxMessage.claim == mail.claim,
        OutboxMessage.status == PENDING,
    )
