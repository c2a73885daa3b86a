"""The RFC 5322 message of an outbox row: headers, and a text body with an HTML alternative."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

from service.mail.outbox import ClaimedMail
from service.security.mailboxes import single_mailbox


def email_message(mail: ClaimedMail, *, sender: str) -> EmailMessage:
    """``mail`` from ``sender`` (``MAIL_FROM``) as ``multipart/alternative``, text first.

    The ``Message-ID`` comes from the row's id, so every attempt at one message carries the
    same one and a receiver can discard a duplicate; ``Auto-Submitted: auto-generated``
    (RFC 3834) tells vacation responders not to answer.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{mail.id}@{single_mailbox(sender).domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    return message
