"""The messages a test's app sent, as a real SMTP server received them.

The app's own mail sender (``MAIL_SEND_IN_WEB``) delivers the outbox to an ``aiosmtpd``
server of the test (``tests/smtp_server.py``); ``Mailbox.next(to)`` waits for the next message
to an address, so tests follow links from what a user would really receive.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from email.message import EmailMessage
from typing import Any

from quart import Quart
from sqlalchemy import func, select

from service.db.models import OutboxMessage
from service.services import services
from tests.smtp_server import SmtpServer

WAIT = 10.0


def mail_settings(server: SmtpServer) -> dict[str, Any]:
    """Settings of an app whose sender delivers to ``server`` at once."""
    return {
        "mail_send_in_web": True,
        "smtp_url": f"smtp+plain://127.0.0.1:{server.port}",
        "mail_from": "Service <noreply@service.example>",
        "mail_poll_interval": 0.2,
        "mail_retry_delay": 0.05,
    }


class Mailbox:
    """The messages ``server`` received from ``app``, each handed out once by ``next``."""

    def __init__(self, app: Quart, server: SmtpServer) -> None:
        self._app = app
        self._server = server
        self._seen = 0
        self._passed: set[int] = set()

    async def settle(self) -> None:
        """Wait for the work the app does after answering (``add_background_task``)."""
        while self._app.background_tasks:
            await asyncio.gather(*self._app.background_tasks)

    async def next(self, to: str, containing: str | None = None) -> EmailMessage:
        """The oldest received message to ``to`` not handed out yet (whose text has
        ``containing``; others to ``to`` are passed over); fails after ``WAIT`` seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            await self.settle()
            for index, message in enumerate(list(self._server.received)):
                if index in self._passed or message["To"] != to:
                    continue
                if not await self._queued_by_this_test(message):
                    continue
                self._passed.add(index)
                text = message.get_body(preferencelist=("plain",))
                if containing is None or (text is not None and containing in text.get_content()):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no message to {to} within {WAIT} s")
            await asyncio.sleep(0.02)

    async def _queued_by_this_test(self, message: EmailMessage) -> bool:
        """Whether the message's outbox row (its ``Message-ID`` names it) is in the database:
        a message left over from an earlier test, whose rows were deleted, is not."""
        row_id = uuid.UUID(str(message["Message-ID"]).strip("<>").partition("@")[0])
        async with services(self._app).db.read() as db:
            found = await db.scalar(select(OutboxMessage.id).where(OutboxMessage.id == row_id))
        return found is not None

    async def queued(self, to: str | None = None) -> int:
        """How many messages the app queued (to ``to``), once its pending work is done."""
        await self.settle()
        statement = select(func.count()).select_from(OutboxMessage)
        if to is not None:
            statement = statement.where(OutboxMessage.recipient == to)
        async with services(self._app).db.read() as db:
            found: int = await db.scalar(statement)
        return found
