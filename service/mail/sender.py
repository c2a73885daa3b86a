"""The mail sender: claims due outbox rows, delivers them, records what happened.

It runs as a background task in each web worker (started and stopped with the app) or in
its own process (``service send-mail``); any number of them may run against one database,
because each row is claimed under a lease by one sender at a time (``outbox.claim_due``).

One pass (``send_due``) claims a batch, delivers each message and records the outcome:

- **delivered**: the row is marked sent and its bodies are erased;
- **temporary failure**: the row becomes due again after the backoff (``retry.py``), until
  ``MAIL_MAX_ATTEMPTS`` attempts have failed; then, as after
- **permanent failure** (a 5xx refusal of the message): the row is given up at once, its
  bodies erased, and a ``mail_given_up`` security event is logged (a reset link that never
  arrived is something an operator may be asked about).

Between passes the sender sleeps until the next row is due, until a transaction of this
process queues a message (``Notices``), or for ``MAIL_POLL_INTERVAL`` at most (messages queued
by other processes). A database error ends the pass, not the sender: it is logged and the
next pass comes after the poll interval.

Delivery is at least once (docs/mail.md): if the process dies after the SMTP server accepted
a message but before the row is marked, the lease runs out and the message is sent again.
Marking is therefore retried for as long as the lease lasts, and stopping waits for the
message in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from service.config import Settings
from service.config.smtp_url import parse_smtp_url
from service.db import Database
from service.mail import outbox
from service.mail.message import email_message
from service.mail.outbox import OUTBOX_CHANNEL, ClaimedMail
from service.mail.retry import RetryPolicy
from service.mail.smtp import SmtpTransport
from service.mail.transport import ConsoleTransport, DeliveryFailed, Transport, mail_log
from service.security.events import security_event

#: Rows one pass claims; small, so that a lease never covers more than a few deliveries.
BATCH = 10
#: Seconds ``stop`` waits for the message in flight before cancelling the sender.
STOP_GRACE = 10.0
#: First wait before retrying a failed database write of an outcome, seconds (then doubled).
_RECORD_RETRY = 0.5


class MailSender:
    """Delivers the outbox of ``db`` through ``transport``, as ``sender`` (``MAIL_FROM``)."""

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> MailSender:
        """The sender the settings describe: SMTP to ``SMTP_URL``, else the log."""
        return cls(
            db,
            transport_for(settings),
            sender=settings.mail_from,
            policy=RetryPolicy(settings.mail_max_attempts, settings.mail_retry_delay),
            lease=settings.mail_lease,
            poll_interval=settings.mail_poll_interval,
        )

    def __init__(
        self,
        db: Database,
        transport: Transport,
        *,
        sender: str,
        policy: RetryPolicy,
        lease: float,
        poll_interval: float,
    ) -> None:
        self._db = db
        self._transport = transport
        self._sender = sender
        self._policy = policy
        self._lease = timedelta(seconds=lease)
        self._poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Run in the background (``before_serving``)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="mail-sender")

    @property
    def running(self) -> bool:
        """Whether the background task runs (between ``start`` and ``stop``)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Finish the message in flight (up to ``STOP_GRACE`` seconds), then end the task.

        A message cut off by the cancellation keeps its lease and is sent again once the
        lease runs out, by whichever sender comes first.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._db.notices.ring(OUTBOX_CHANNEL)
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
        except TimeoutError:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Send passes until ``stop``."""
        while not self._stopping.is_set():
            try:
                while await self.send_due() and not self._stopping.is_set():
                    pass
                wait = await self._time_to_next_due()
            except (DBAPIError, OSError) as error:
                mail_log.warning("mail sender: the database failed (%s); trying again later", error)
                wait = self._poll_interval
            except Exception:  # a bug must not end the sending of every later message
                mail_log.exception("mail sender: the pass failed; trying again later")
                wait = self._poll_interval
            if not self._stopping.is_set():
                await self._db.notices.wait(OUTBOX_CHANNEL, within=wait)

    async def _time_to_next_due(self) -> float:
        async with self._db.read() as reader:
            due = await outbox.select_next_due(reader)
        if due is None:
            return self._poll_interval
        seconds = (due - datetime.now(UTC)).total_seconds()
        return min(self._poll_interval, max(0.0, seconds))

    # --- one pass -----------------------------------------------------------------------

    async def send_due(self) -> int:
        """Claim the due messages (a batch) and deliver each; how many were claimed."""
        async with self._db.write() as writer:
            batch = await outbox.claim_due(
                writer, now=datetime.now(UTC), lease=self._lease, limit=BATCH
            )
        for number, mail in enumerate(batch):
            if self._stopping.is_set():
                await self._release(batch[number:])
                break
            await self._deliver(mail)
        return len(batch)

    async def _deliver(self, mail: ClaimedMail) -> None:
        if mail.attempts > self._policy.max_attempts:
            # Its last attempt's sender died before recording how it went.
            await self._give_up(mail, "the sender stopped during the last attempt", None)
            return
        try:
            await self._transport.send(email_message(mail, sender=self._sender))
        except DeliveryFailed as failure:
            if failure.permanent or self._policy.gives_up_after(mail.attempts):
                await self._give_up(mail, str(failure), failure.reply_code)
            else:
                at = datetime.now(UTC) + timedelta(seconds=self._policy.delay(mail.attempts))
                await self._record(outbox.update_retry, mail, at=at, error=str(failure))
                mail_log.info(
                    "mail %s not delivered (attempt %d, %s); next try at %s",
                    mail.id,
                    mail.attempts,
                    failure,
                    at.isoformat(timespec="seconds"),
                )
            return
        await self._record(outbox.update_sent, mail, datetime.now(UTC))

    async def _give_up(self, mail: ClaimedMail, reason: str, reply_code: int | None) -> None:
        await self._record(outbox.update_given_up, mail, now=datetime.now(UTC), error=reason)
        security_event(
            "mail_given_up",
            level=logging.WARNING,
            mail_id=mail.id,
            template=mail.template,
            attempts=mail.attempts,
            reply_code=reply_code,
            reason=reason,
        )

    async def _release(self, batch: list[ClaimedMail]) -> None:
        """Hand back claimed messages not tried yet (stopping), due at once again."""
        for mail in batch:
            await self._record(outbox.update_released, mail, datetime.now(UTC))

    async def _record(
        self, update: Callable[..., Awaitable[int]], mail: ClaimedMail, *args: Any, **kw: Any
    ) -> None:
        """Write an outcome, retrying a failed database write while the lease lasts (a
        delivered message that is never marked would be sent again)."""
        deadline = datetime.now(UTC) + self._lease
        delay = _RECORD_RETRY
        while True:
            try:
                async with self._db.write() as writer:
                    await update(writer, mail, *args, **kw)
            except (DBAPIError, OSError) as error:
                if datetime.now(UTC) + timedelta(seconds=delay) >= deadline:
                    raise
                mail_log.warning("mail %s: recording the outcome failed (%s)", mail.id, error)
                await asyncio.sleep(delay)
                delay *= 2
            else:
                return


def transport_for(settings: Settings) -> Transport:
    """SMTP to ``SMTP_URL`` when it is set; otherwise (never in production) the log."""
    if settings.smtp_url is None:
        return ConsoleTransport()
    server = parse_smtp_url(settings.smtp_url.get_secret_value())
    return SmtpTransport(server, timeout=settings.smtp_timeout)
