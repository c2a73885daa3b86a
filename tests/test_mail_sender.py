"""The mail sender against a real SMTP server (aiosmtpd over a socket), on both databases.

Each app here runs its sender in the background as a web worker does (``MAIL_SEND_IN_WEB``),
with short retry delays; messages are queued with ``outbox.enqueue`` in a write transaction,
as a route would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select

from service.db import Database
from service.db.models import OutboxMessage
from service.mail import outbox
from service.mail.outbox import enqueue
from service.services import services
from tests.helpers import AppFactory, app_factory
from tests.smtp_server import SmtpServer, until

MAIL = {
    "mail_send_in_web": True,
    "mail_from": "Service <noreply@service.example>",
    "mail_retry_delay": 0.05,
    "mail_poll_interval": 0.2,
    "mail_lease": 10.0,
    "smtp_timeout": 5.0,
}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def make_app(database_url: str, smtp: SmtpServer) -> AsyncIterator[AppFactory]:
    """Served apps whose senders deliver to ``smtp``."""
    async with app_factory(
        database_url, {**MAIL, "smtp_url": f"smtp+plain://127.0.0.1:{smtp.port}"}
    ) as build:
        yield build


async def queue(app: Quart, *names: str, to: str = "ada@example.com") -> None:
    """One transaction that queues a ``test_message`` per name."""
    async with services(app).db.write() as writer:
        for name in names:
            context = {"name": name, "link": f"https://service.example/hello?name={name}"}
            await enqueue(writer, to=to, template="test_message", context=context)


async def rows(db: Database) -> list[Any]:
    async with db.write() as writer:
        return list(await writer.all(select(OutboxMessage).order_by(OutboxMessage.created_at)))


async def until_rows(db: Database, status: str, count: int = 1, within: float = 10.0) -> list[Any]:
    async def done() -> bool:
        return len([row for row in await rows(db) if row.status == status]) >= count

    await until(done, within, f"{count} rows {status}")
    return await rows(db)


async def test_a_queued_message_arrives_with_its_text_and_html_parts(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = await make_app()
    await queue(app, "Ada <3", to="Ada Lovelace <ada@example.com>")

    [message] = await smtp.wait_for(1)

    assert message["From"] == "Service <noreply@service.example>"
    assert message["To"] == "Ada Lovelace <ada@example.com>"
    assert message["Subject"] == "Test message for Ada <3"
    assert message["Auto-Submitted"] == "auto-generated"
    assert smtp.envelopes == [("noreply@service.example", ["ada@example.com"])]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "Hello Ada <3," in text.get_content()
    assert "https://service.example/hello?name=Ada <3" in text.get_content()
    assert "Hello Ada &lt;3," in html.get_content()
    [row] = await until_rows(services(app).db, "sent")
    assert message["Message-ID"] == f"<{row.id}@service.example>"
    assert (row.attempts, row.text_body, row.html_body) == (1, None, None)
    assert row.finished_at is not None


async def test_a_commit_wakes_the_sender_without_waiting_for_the_poll(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = await make_app(mail_poll_interval=600)
    await asyncio.sleep(0.2)  # the sender's first pass found nothing and waits

    await queue(app, "Ada")

    await smtp.wait_for(1, within=5)


async def test_messages_wait_while_the_server_is_down_and_each_arrives_once(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    """The SMTP server goes away with messages pending; the sender retries (connection
    refused is temporary), and when the server is back every message arrives exactly once."""
    app = await make_app(mail_max_attempts=30)
    db = services(app).db
    smtp.stop()
    names = [f"user{number}" for number in range(6)]

    await queue(app, *names)

    async def retrying() -> bool:
        found = await rows(db)
        return len(found) == 6 and all(row.attempts >= 2 for row in found)

    await until(retrying, 10, "every message to fail at least twice")
    assert all(row.status == "pending" for row in await rows(db))
    assert all("Connect" in row.last_error for row in await rows(db))
    smtp.start()

    await until_rows(db, "sent", 6)
    await asyncio.sleep(0.5)  # time for a duplicate to show up, if one were coming
    subjects = sorted(str(message["Subject"]) for message in smtp.received)
    assert subjects == sorted(f"Test message for {name}" for name in names)
    assert len({message["Message-ID"] for message in smtp.received}) == 6


async def test_a_4xx_reply_is_retried_and_the_message_then_delivered(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = await make_app()
    smtp.refuse_next("451 4.3.0 Try again later", "452 4.3.1 Insufficient storage")

    await queue(app, "Ada")

    await smtp.wait_for(1)
    [row] = await until_rows(services(app).db, "sent")
    assert smtp.attempts == 3
    assert row.attempts == 3


async def test_a_5xx_refusal_gives_up_at_once_with_a_security_event(
    make_app: AppFactory, smtp: SmtpServer, security_events: list[logging.LogRecord]
) -> None:
    app = await make_app()
    smtp.refuse_next("550 5.1.1 No such mailbox", at="RCPT")

    await queue(app, "Ada")

    [row] = await until_rows(services(app).db, "failed")
    assert (row.attempts, row.text_body, row.html_body) == (1, None, None)
    assert row.last_error == "550 5.1.1 No such mailbox"
    assert smtp.received == []
    [event] = [record for record in security_events if record.event == "mail_given_up"]  # type: ignore[attr-defined]
    assert event.levelno == logging.WARNING
    assert event.reply_code == "550"  # type: ignore[attr-defined]
    assert event.mail_id == str(row.id)  # type: ignore[attr-defined]
    assert event.template == "test_message"  # type: ignore[attr-defined]


async def test_a_5xx_to_data_gives_up_too(make_app: AppFactory, smtp: SmtpServer) -> None:
    app = await make_app()
    smtp.refuse_next("554 5.7.1 Message refused by policy")

    await queue(app, "Ada")

    [row] = await until_rows(services(app).db, "failed")
    assert row.attempts == 1


async def test_temporary_failures_give_up_after_the_last_attempt(
    make_app: AppFactory, smtp: SmtpServer, security_events: list[logging.LogRecord]
) -> None:
    app = await make_app(mail_max_attempts=3, mail_retry_delay=0.01)
    smtp.refuse_next(*["421 4.7.0 Too busy"] * 5)

    await queue(app, "Ada")

    [row] = await until_rows(services(app).db, "failed")
    assert row.attempts == 3
    assert smtp.attempts == 3
    assert row.last_error == "421 4.7.0 Too busy"
    [event] = [record for record in security_events if record.event == "mail_given_up"]  # type: ignore[attr-defined]
    assert event.attempts == "3"  # type: ignore[attr-defined]


async def test_two_web_workers_deliver_each_message_once(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    """Two apps on one database, each with its sender (as two workers or two dynos)."""
    first = await make_app(mail_poll_interval=0.05)
    await make_app(mail_poll_interval=0.05)
    names = [f"user{number}" for number in range(40)]

    for start in range(0, 40, 4):  # several commits, so both senders find work
        await queue(first, *names[start : start + 4])

    await until_rows(services(first).db, "sent", 40)
    await asyncio.sleep(0.3)
    subjects = sorted(str(message["Subject"]) for message in smtp.received)
    assert subjects == sorted(f"Test message for {name}" for name in names)


async def test_a_dead_senders_lease_runs_out_and_another_sender_delivers(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = await make_app(mail_send_in_web=False)
    db = services(app).db
    await queue(app, "Ada")
    async with db.write() as writer:  # a sender that claims the row and dies
        [claimed] = await outbox.claim_due(
            writer, now=datetime.now(UTC), lease=timedelta(seconds=0.5), limit=1
        )

    await make_app()

    await smtp.wait_for(1)
    [row] = await until_rows(db, "sent")
    assert row.attempts == 2
    assert row.id == claimed.id


async def test_without_smtp_url_each_message_is_one_log_record(database_url: str) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[assignment]
    logger = logging.getLogger("service.mail")
    logger.addHandler(handler)
    try:
        async with app_factory(database_url, {**MAIL, "log_level": "INFO"}) as build:
            app = await build()
            await queue(app, "Ada", "Bob")
            await until_rows(services(app).db, "sent", 2)
    finally:
        logger.removeHandler(handler)

    console = [record for record in records if "NOT SENT" in record.getMessage()]
    assert len(console) == 2
    line = console[0].getMessage()
    assert "console mail backend, NOT SENT (SMTP_URL is not set)" in line
    assert 'to="ada@example.com"' in line
    assert "https://service.example/hello?name=Ada" in line
    assert "\n" not in line, "one record is one line"
    assert console[0].mail_subject == "Test message for Ada"  # type: ignore[attr-defined]


async def test_the_sender_runs_while_the_app_serves_and_stops_with_it(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = {**MAIL, "smtp_url": f"smtp+plain://127.0.0.1:{smtp.port}"}
    async with app_factory(database_url, settings) as build:
        app = await build()
        sender = services(app).mail
        assert sender is not None
        assert sender.running
        await queue(app, "Ada")
        await smtp.wait_for(1)

    assert not sender.running


async def test_with_mail_send_in_web_off_the_web_app_sends_nothing(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = await make_app(mail_send_in_web=False)
    await queue(app, "Ada")
    await asyncio.sleep(0.5)

    assert smtp.received == []
    assert [row.status for row in await rows(services(app).db)] == ["pending"]
    sender = services(app).mail
    assert sender is not None
    assert not sender.running


async def test_with_email_off_there_is_no_sender(make_app: AppFactory) -> None:
    app = await make_app(email_enabled=False)
    assert services(app).mail is None


async def test_stopping_waits_for_the_message_in_flight_and_hands_back_the_rest(
    make_app: AppFactory, smtp: SmtpServer
) -> None:
    app = await make_app(mail_send_in_web=False)
    db = services(app).db
    sender = services(app).mail
    assert sender is not None
    smtp.data_delay = 0.5
    await queue(app, "first", "second", "third")
    await sender.start()
    await asyncio.sleep(0.2)  # the first message is in the server's hands

    await sender.stop()

    assert [str(message["Subject"]) for message in smtp.received] == ["Test message for first"]
    by_status = sorted((row.status, row.attempts, row.claim) for row in await rows(db))
    assert by_status == [("pending", 0, None), ("pending", 0, None), ("sent", 1, None)]
    pending = [row for row in await rows(db) if row.status == "pending"]
    assert all(row.available_at <= datetime.now(UTC) for row in pending), "due again at once"


async def test_a_database_failure_ends_the_pass_not_the_sender(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A database the sender cannot use (here: no outbox table) is a warning per pass; the
    sender keeps trying and still stops cleanly."""
    from service.mail.sender import MailSender  # noqa: PLC0415
    from tests.helpers import make_settings  # noqa: PLC0415

    settings = make_settings(f"sqlite:///{tmp_path}/unmigrated.db", mail_poll_interval=0.05)
    db = Database(settings)
    sender = MailSender.from_settings(settings, db)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[assignment]
    logging.getLogger("service.mail").addHandler(handler)
    try:
        await sender.start()
        await until(lambda: len(records) >= 3, 5, "three failed passes")
        assert sender.running
        await sender.stop()
    finally:
        logging.getLogger("service.mail").removeHandler(handler)
        await db.dispose()

    assert not sender.running
    assert all(record.levelno == logging.WARNING for record in records)
    assert "no such table: outbox" in records[0].getMessage()
