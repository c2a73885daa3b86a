"""How a message leaves: the ``Transport`` interface, its failures, and the console transport.

A transport delivers one message or raises ``DeliveryFailed``, saying whether trying again
later may succeed (``permanent=False``: the server was away, busy or said 4xx) or not
(``permanent=True``: the server refused this very message with a 5xx). The sender decides
what to do about it (``service.mail.sender``).

``ConsoleTransport`` is for development without ``SMTP_URL``: every message becomes one log
record on ``service.mail``, marked as not sent, with its text body (so a developer can follow
the link in it). Settings never choose it in production.
"""

from __future__ import annotations

import json
import logging
from email.message import EmailMessage
from typing import Protocol

mail_log = logging.getLogger("service.mail")


class DeliveryFailed(Exception):
    """The message was not delivered; ``str(error)`` is safe to store (no password)."""

    def __init__(self, reason: str, *, permanent: bool, reply_code: int | None = None) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.reply_code = reply_code


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to its ``To``; ``DeliveryFailed`` if it was not."""


class ConsoleTransport:
    """Writes each message to the log instead of sending it."""

    async def send(self, message: EmailMessage) -> None:
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        fields = {"to": str(message["To"]), "subject": str(message["Subject"]), "text": text}
        pairs = " ".join(f"{key}={json.dumps(value)}" for key, value in fields.items())
        mail_log.info(
            "console mail backend, NOT SENT (SMTP_URL is not set): %s",
            pairs,
            extra={"mail_" + key: value for key, value in fields.items()},
        )
