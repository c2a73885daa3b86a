"""The messages of account events, put in the mail outbox in the caller's transaction.

Each function names its template (``service/mail/templates``) and fills its context, so the
message is sent if and only if the change that caused it commits. Links point at
``PUBLIC_BASE_URL`` and carry the token in the fragment (``#token=...``): browsers never send a
fragment to a server, so the token stays out of access logs and ``Referer`` headers; the page
at that path posts it to the API. Each message also shows the bare token, for clients without
such a page.
"""

from __future__ import annotations

from service.config import Settings
from service.db import Writer
from service.mail.outbox import enqueue

VERIFY_PAGE = "/verify-email"
RESET_PAGE = "/password/reset"


def link(settings: Settings, path: str, token: str) -> str:
    """The page at ``path`` of the public site, with ``token`` in the fragment."""
    return f"{settings.link_base}{path}#token={token}"


def duration(seconds: int) -> str:
    """``86400`` as ``24 hours``, ``1800`` as ``30 minutes``: how long a link works, in words."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


async def verify_email(
    db: Writer, settings: Settings, *, username: str, email: str, token: str
) -> None:
    await enqueue(
        db,
        to=email,
        template="verify_email",
        context={
            "username": username,
            "email": email,
            "token": token,
            "link": link(settings, VERIFY_PAGE, token),
            "valid_for": duration(settings.email_token_ttl),
        },
    )


async def email_changed(db: Writer, *, username: str, old_email: str, new_email: str) -> None:
    """The notice to the address an account had: someone changed it."""
    await enqueue(
        db,
        to=old_email,
        template="email_changed",
        context={"username": username, "new_email": new_email},
    )


async def address_in_use(db: Writer, *, username: str, email: str, claimant: str) -> None:
    """The notice to the holder of a verified address that the account ``claimant`` asked
    for it: sent instead of a verification link, which would have come here too."""
    await enqueue(
        db,
        to=email,
        template="address_in_use",
        context={"username": username, "email": email, "claimant": claimant},
    )


async def claims_ended(db: Writer, *, username: str, email: str, others: list[str]) -> None:
    """The notice to the address just verified: the accounts ``others`` had given it without
    verifying it and lost it (this mailbox is the only one they gave)."""
    await enqueue(
        db,
        to=email,
        template="claims_ended",
        context={"username": username, "email": email, "others": ", ".join(others)},
    )


async def password_reset(
    db: Writer, settings: Settings, *, username: str, email: str, token: str
) -> None:
    await enqueue(
        db,
        to=email,
        template="password_reset",
        context={
            "username": username,
            "token": token,
            "link": link(settings, RESET_PAGE, token),
            "valid_for": duration(settings.reset_token_ttl),
        },
    )


async def password_changed(db: Writer, *, username: str, email: str) -> None:
    """The notice after a reset: every session was ended."""
    await enqueue(db, to=email, template="password_changed", context={"username": username})
