"""Delivery over SMTP with aiosmtplib, and what each kind of failure means for a retry.

One connection per message: a refusal or a dropped connection then concerns that message
alone, and a batch never waits on a connection half-broken by the previous message. The
connection is protected as ``SMTP_URL`` says (``service.config.smtp_url``); certificates are
verified, and STARTTLS is required for ``smtp://``, never optional.

Failures (RFC 5321 section 4.2.1: 4yz is transient, 5yz permanent):

- **Temporary**: the connection could not be made, broke or timed out; a 4xx reply to
  anything; and any refusal before the message itself was discussed: the greeting, EHLO,
  STARTTLS, TLS (an untrusted certificate) and AUTH. Those are the server's or the
  configuration's fault, not the message's; an operator can fix them, and the message then
  goes out on a later try.
- **Permanent**: a 5xx reply to MAIL FROM, RCPT TO or DATA: the server refuses this message
  (unknown mailbox, policy, size), and asking again would get the same answer.
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib

from service.config.smtp_url import SmtpServer
from service.mail.transport import DeliveryFailed

#: Replies to the message itself, where a 5xx means "never".
_ABOUT_THE_MESSAGE = (
    aiosmtplib.SMTPSenderRefused,
    aiosmtplib.SMTPRecipientRefused,
    aiosmtplib.SMTPDataError,
)


class SmtpTransport:
    """Submits messages to ``server``; ``tls_context`` replaces the default trust (tests)."""

    def __init__(
        self, server: SmtpServer, *, timeout: float, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._server = server
        self._timeout = timeout
        self._tls_context = tls_context

    async def send(self, message: EmailMessage) -> None:
        server = self._server
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.security == "tls",
                start_tls=server.security == "starttls",
                tls_context=self._tls_context,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise refused(error.recipients[0]) from None
        except _ABOUT_THE_MESSAGE as error:
            raise refused(error) from None
        except aiosmtplib.SMTPResponseException as error:
            raise DeliveryFailed(
                f"{error.code} {error.message}", permanent=False, reply_code=error.code
            ) from None
        except (aiosmtplib.SMTPException, OSError) as error:  # ssl.SSLError is an OSError
            reason = " ".join(str(error).split()) or type(error).__name__
            raise DeliveryFailed(f"{type(error).__name__}: {reason}", permanent=False) from None


def refused(error: aiosmtplib.SMTPResponseException) -> DeliveryFailed:
    """A reply to the message: permanent for 5xx, temporary otherwise."""
    return DeliveryFailed(
        f"{error.code} {error.message}", permanent=500 <= error.code < 600, reply_code=error.code
    )
