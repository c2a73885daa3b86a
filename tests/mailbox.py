"""The messages a test's app sent: ``Mailbox.next(to)`` waits for the next one to an address.

Until the outbox's sender delivers to a real SMTP server in these tests, messages are read
from the outbox rows the app queued.
"""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage

from quart import Quart
from sqlalchemy import func, select

from service.db.models import OutboxMessage
from service.services import services

WAIT = 10.0


class Mailbox:
    """The messages ``app`` queued, each handed out once by ``next``."""

    def __init__(self, app: Quart) -> None:
        self._app = app
        self._seen: set[object] = set()

    async def settle(self) -> None:
        """Wait for the work the app does after answering (``add_background_task``)."""
        while self._app.background_tasks:
            await asyncio.gather(*self._app.background_tasks)

    async def next(self, to: str, containing: str | None = None) -> EmailMessage:
        """The oldest message to ``to`` not handed out yet (whose text has ``containing``;
        others are passed over); fails after ``WAIT`` seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            await self.settle()
            async with services(self._app).db.read() as db:
                rows = await db.all(
                    select(OutboxMessage)
                    .where(OutboxMessage.recipient == to)
                    .order_by(OutboxMessage.created_at)
                )
            for row in rows:
                if row["id"] not in self._seen:
                    self._seen.add(row["id"])
                    if containing is not None and containing not in row["text_body"]:
                        continue
                    message = EmailMessage()
                    message["To"] = row["recipient"]
                    message["Subject"] = row["subject"]
                    message.set_content(row["text_body"])
                    message.add_alternative(row["html_body"], subtype="html")
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no message to {to} within {WAIT} s")
            await asyncio.sleep(0.02)

    async def queued(self, to: str | None = None) -> int:
        """How many messages the app queued (to ``to``), once its pending work is done."""
        await self.settle()
        statement = select(func.count()).select_from(OutboxMessage)
        if to is not None:
            statement = statement.where(OutboxMessage.recipient == to)
        async with services(self._app).db.read() as db:
            found: int = await db.scalar(statement)
        return found
