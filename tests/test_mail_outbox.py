"""The outbox: an email is queued in the transaction of its cause, rendered, and purged later."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jinja2 import UndefinedError
from quart import Quart
from sqlalchemy import func, select, update

from service.accounts.queries import insert_user
from service.config import Settings
from service.db import Database, Writer
from service.db.models import OutboxMessage
from service.errors import Conflict
from service.mail import outbox
from service.mail.outbox import OUTBOX_CHANNEL, delete_delivered, enqueue, public_link
from service.services import services

CONTEXT = {"name": "Ada <b>&</b>", "link": "https://api.example/check?token=a&b=c"}


def database(app: Quart) -> Database:
    return services(app).db


async def queue_then(db: Database, cause: Callable[[Writer], Awaitable[object]]) -> None:
    """One unit of work: queue a message, then run ``cause`` in the same transaction."""
    async with db.write() as writer:
        await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)
        await cause(writer)


async def fail(error: Exception) -> None:
    raise error


async def outbox_rows(db: Database) -> list[Any]:
    async with db.write() as writer:
        return list(await writer.all(select(OutboxMessage).order_by(OutboxMessage.created_at)))


async def test_enqueue_stores_the_rendered_message_once_the_transaction_commits(
    app: Quart,
) -> None:
    db = database(app)
    async with db.write() as writer:
        await enqueue(writer, to="Ada <ada@example.com>", template="test_message", context=CONTEXT)

    [row] = await outbox_rows(db)
    assert row.recipient == "Ada <ada@example.com>"
    assert row.status == "pending"
    assert row.attempts == 0
    assert row.subject == "Test message for Ada <b>&</b>"
    # Plain text shows the value as written; HTML escapes it (and the link's ampersand).
    assert "Hello Ada <b>&</b>," in row.text_body
    assert "https://api.example/check?token=a&b=c" in row.text_body
    assert "Hello Ada &lt;b&gt;&amp;&lt;/b&gt;," in row.html_body
    assert 'href="https://api.example/check?token=a&amp;b=c"' in row.html_body
    assert row.available_at <= datetime.now(UTC)


async def test_a_failed_transaction_leaves_no_message(app: Quart) -> None:
    """The email and its cause commit together or not at all: here the cause fails after
    the enqueue (a taken username at signup), so there is nothing to send."""
    db = database(app)
    with pytest.raises(Conflict):
        await queue_then(db, lambda _: fail(Conflict("This username is already taken.")))

    assert await outbox_rows(db) == []


async def test_a_signup_that_fails_after_the_enqueue_leaves_no_message(app: Quart) -> None:
    """A real unit of work: the second insert of one username fails inside the transaction
    that already queued its email."""
    db = database(app)
    async with db.write() as writer:
        await insert_user(writer, "ada", "hash")
    with pytest.raises(Conflict):
        await queue_then(db, lambda writer: insert_user(writer, "ADA", "hash"))

    assert await outbox_rows(db) == []


async def test_the_sender_is_woken_after_commit_and_not_after_rollback(app: Quart) -> None:
    db = database(app)
    assert not await db.notices.wait(OUTBOX_CHANNEL, within=0.01)

    with pytest.raises(RuntimeError):
        await queue_then(db, lambda _: fail(RuntimeError("the cause failed")))
    assert not await db.notices.wait(OUTBOX_CHANNEL, within=0.01)

    waiter = asyncio.ensure_future(db.notices.wait(OUTBOX_CHANNEL, within=5))
    await asyncio.sleep(0)
    async with db.write() as writer:
        await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)
        await asyncio.sleep(0.05)
        assert not waiter.done(), "woken before the commit: the row was not visible yet"
    assert await waiter


async def test_a_ring_while_nobody_waits_is_kept_for_the_next_wait(app: Quart) -> None:
    db = database(app)
    await db.notices.wait(OUTBOX_CHANNEL, within=0.01)  # the sender exists and waited before
    async with db.write() as writer:
        await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)

    assert await db.notices.wait(OUTBOX_CHANNEL, within=0.01)
    assert not await db.notices.wait(OUTBOX_CHANNEL, within=0.01)


@pytest.mark.parametrize(
    "to",
    [
        "ada@example.com, eve@example.com",
        "ada@example.com\r\nBcc: eve@example.com",
        "ada",
        "",
        "<@>",
        f"{'a' * 320}@example.com",
    ],
)
async def test_a_recipient_that_is_not_one_mailbox_is_refused(app: Quart, to: str) -> None:
    db = database(app)
    with pytest.raises(ValueError, match="address"):
        async with db.write() as writer:
            await enqueue(writer, to=to, template="test_message", context=CONTEXT)

    assert await outbox_rows(db) == []


async def test_a_missing_template_variable_fails_the_transaction(app: Quart) -> None:
    db = database(app)
    with pytest.raises(UndefinedError):
        async with db.write() as writer:
            await enqueue(writer, to="ada@example.com", template="test_message", context={})

    assert await outbox_rows(db) == []


@pytest.mark.parametrize("name", ["../settings", "Test_Message", "no_such_template"])
async def test_only_the_packaged_templates_can_be_used(app: Quart, name: str) -> None:
    db = database(app)
    with pytest.raises(Exception, match=r"template"):
        async with db.write() as writer:
            await enqueue(writer, to="ada@example.com", template=name, context=CONTEXT)

    assert await outbox_rows(db) == []


async def test_a_subject_is_one_line_whatever_the_context_says(app: Quart) -> None:
    db = database(app)
    context = {**CONTEXT, "name": "Ada\r\nBcc: eve@example.com"}
    async with db.write() as writer:
        await enqueue(writer, to="ada@example.com", template="test_message", context=context)

    [row] = await outbox_rows(db)
    assert row.subject == "Test message for Ada Bcc: eve@example.com"


async def test_delete_delivered_removes_finished_rows_before_the_cutoff_only(app: Quart) -> None:
    db = database(app)
    now = datetime.now(UTC)
    async with db.write() as writer:
        for _ in range(4):
            await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)
    ids = [row.id for row in await outbox_rows(db)]
    finished = {
        ids[0]: ("sent", now - timedelta(days=10)),
        ids[1]: ("failed", now - timedelta(days=10)),
        ids[2]: ("sent", now),
    }  # ids[3] stays pending
    async with db.write() as writer:
        for row_id, (status, at) in finished.items():
            await writer.run(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id)
                .values(status=status, finished_at=at)
            )
    async with db.write() as writer:
        await writer.run(
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[3])
            .values(created_at=now - timedelta(days=30))
        )

    async with db.write() as writer:
        deleted = await delete_delivered(writer, now - timedelta(days=1))

    assert deleted == 2
    assert {row.id for row in await outbox_rows(db)} == {ids[2], ids[3]}


async def test_claimed_rows_carry_their_bodies_and_count_the_attempt(app: Quart) -> None:
    db = database(app)
    async with db.write() as writer:
        await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)
    now = datetime.now(UTC)

    async with db.write() as writer:
        [mail] = await outbox.claim_due(writer, now=now, lease=timedelta(minutes=5), limit=10)
    async with db.write() as writer:
        again = await outbox.claim_due(writer, now=now, lease=timedelta(minutes=5), limit=10)

    assert mail.attempts == 1
    assert "Hello Ada" in mail.text_body
    assert again == [], "a leased row is not handed out twice"
    async with db.write() as writer:
        expired = await outbox.claim_due(
            writer, now=now + timedelta(minutes=6), lease=timedelta(minutes=5), limit=10
        )
    assert [(m.id, m.attempts) for m in expired] == [(mail.id, 2)], "the lease expired"
    assert expired[0].claim != mail.claim


async def test_marking_a_row_sent_erases_its_bodies(app: Quart) -> None:
    db = database(app)
    async with db.write() as writer:
        await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)
    now = datetime.now(UTC)
    async with db.write() as writer:
        [mail] = await outbox.claim_due(writer, now=now, lease=timedelta(minutes=5), limit=1)
        await outbox.update_sent(writer, mail, now)

    [row] = await outbox_rows(db)
    assert (row.status, row.text_body, row.html_body, row.finished_at) == ("sent", None, None, now)


async def test_a_sender_whose_lease_was_taken_over_cannot_reschedule_the_row(app: Quart) -> None:
    db = database(app)
    async with db.write() as writer:
        await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)
    now = datetime.now(UTC)
    lease = timedelta(seconds=1)
    async with db.write() as writer:
        [first] = await outbox.claim_due(writer, now=now, lease=lease, limit=1)
    async with db.write() as writer:
        [second] = await outbox.claim_due(writer, now=now + 2 * lease, lease=lease, limit=1)
        stale = await outbox.update_retry(writer, first, at=now, error="late")
        stale += await outbox.update_given_up(writer, first, now=now, error="late")

    assert stale == 0
    assert second.id == first.id


def test_public_link_joins_the_base_the_path_and_the_encoded_query() -> None:
    assert public_link("https://api.example/", "/verify") == "https://api.example/verify"
    assert (
        public_link("https://api.example/v1", "/verify", token="a+b/c=", path="x")
        == "https://api.example/v1/verify?token=a%2Bb%2Fc%3D&path=x"
    )
    with pytest.raises(ValueError, match="starts with /"):
        public_link("https://api.example", "verify")


async def test_every_row_is_counted_once(app: Quart) -> None:
    """Many enqueues in one transaction are many rows, each with its own id."""
    db = database(app)
    async with db.write() as writer:
        for number in range(5):
            await enqueue(
                writer, to=f"u{number}@example.com", template="test_message", context=CONTEXT
            )
        count = await writer.scalar(select(func.count()).select_from(OutboxMessage))

    assert count == 5
    assert len({row.id for row in await outbox_rows(db)}) == 5
    assert all(isinstance(row.id, uuid.UUID) for row in await outbox_rows(db))


async def test_two_claimers_at_once_never_share_a_row(app: Quart, settings: Settings) -> None:
    """Two senders with their own connections claim together while the first one's claim is
    still uncommitted. PostgreSQL: the second skips the locked rows (SKIP LOCKED) and gets the
    others at once; SQLite: it waits for the first one's write to commit, then gets the
    others. Either way no row is handed out twice."""
    db = database(app)
    other = Database(settings)
    async with db.write() as writer:
        for _ in range(6):
            await enqueue(writer, to="ada@example.com", template="test_message", context=CONTEXT)
    now, lease = datetime.now(UTC), timedelta(minutes=5)

    async def claim(on: Database) -> list[outbox.ClaimedMail]:
        async with on.write() as writer:
            return await outbox.claim_due(writer, now=now, lease=lease, limit=3)

    try:
        async with db.write() as writer:
            first = await outbox.claim_due(writer, now=now, lease=lease, limit=3)
            second_claim = asyncio.ensure_future(claim(other))
            await asyncio.sleep(0.3)
            finished_while_first_open = second_claim.done()
        second = await second_claim
        third = await claim(other)
    finally:
        await other.dispose()

    assert len(first) == len(second) == 3
    assert not {mail.id for mail in first} & {mail.id for mail in second}
    assert third == []
    if settings.database_url.startswith("postgresql"):
        assert finished_while_first_open, "the second claim waited for the first's row locks"
