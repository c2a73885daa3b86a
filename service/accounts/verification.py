"""Email verification links: issue one, ask for another, change the account's address.

A verification token is bound to the address it was sent to (its ``binding`` is that address's
``email_key``): after a change of address, links sent to the old one confirm nothing. A new
link supersedes the older ones. Following a link is ``claims.confirm``; whether a link or a
notice to the address's holder goes out is ``claims.mail_claim``, run after the answer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.accounts import addresses, messages, tokens
from service.accounts.flows import confirm_password
from service.accounts.queries import select_user
from service.config import Settings
from service.db import Writer
from service.errors import Conflict, NotFound, Unauthorized
from service.limits.limiter import address_key
from service.security.email_addresses import email_key
from service.security.events import security_event
from service.security.tokens.account import Purpose
from service.services import Services
from service.sessions.queries import touch_live_session


async def send_verification(
    db: Writer, settings: Settings, user_id: uuid.UUID, username: str, email: str
) -> None:
    """Issue a verification token for ``email`` and put its message in the outbox."""
    token = await tokens.insert_token(
        db,
        user_id,
        Purpose.VERIFY_EMAIL,
        email_key(email),
        now=datetime.now(UTC),
        ttl=settings.email_token_ttl,
    )
    await messages.verify_email(db, settings, username=username, email=email, token=token)


async def admit_signup_message(services: Services, email: str, *, address: str | None) -> None:
    """Count the message of an anonymous signup with ``email`` from the client ``address``:
    ``EMAIL_REQUESTS_PER_HOUR`` per email address *and* client network, so a flood from one
    network is refused there and never stops the address's owner signing up from another
    (``TooManyRequests``). Counted the same whether a link or a holder's notice goes out."""
    await services.limits.admit_mail("verify", _from_network(email, address))


async def admit_account_message(services: Services, user_id: uuid.UUID) -> None:
    """Count a message an account asks for (``/me/email``, resend): the account's own
    ``EMAIL_REQUESTS_PER_HOUR``, which no one else's requests spend (``TooManyRequests``)."""
    await services.limits.admit_mail("verify", f"account:{user_id}")


def _from_network(email: str, address: str | None) -> str:
    """The mail quota subject of an anonymous request: the email address and the network."""
    return f"email:{email_key(email)}|address:{address_key(address)}"


async def resend(services: Services, user_id: uuid.UUID) -> None:
    """Admit a new verification message for the account's unverified address (the caller
    then runs ``claims.mail_claim``).

    Limited per account (``admit_account_message``).
    ``Conflict`` if the account has no address or it is verified already.
    """
    async with services.db.read() as db:
        user = await select_user(db, user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    if user.email is None:
        raise Conflict("The account has no email address: set one with POST /me/email.")
    if user.email_verified:
        raise Conflict("The account's email address is verified already.")
    await admit_account_message(services, user.id)


async def change_email(
    services: Services,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    current_password: str,
    new_email: str,
    *,
    address: str | None,
) -> bool:
    """Give the account a new address, unverified until the link sent to it is followed;
    whether it is a new address (the caller then runs ``claims.mail_claim``).

    The current password is checked as at ``/me/password`` (a wrong one is a 422 on
    ``current_password``, limited per session and client address). A verified old address
    gets a notice; the account's verification and reset links die. The same address in
    another letter case only changes how it is written. Nothing here depends on whether
    another account has the new address.
    """
    user = await confirm_password(
        services,
        user_id,
        session_id,
        current_password,
        address=address,
        failed_event="email_change_failed",
    )
    same_address = user.email_key == email_key(new_email)
    if not same_address:  # a message goes out: limited like resending one
        await admit_account_message(services, user.id)
    async with services.db.write() as db:
        if not await touch_live_session(db, user_id, session_id, datetime.now(UTC)):
            raise Unauthorized("The session of this access token has ended.", token_presented=True)
        if same_address:
            await addresses.update_email_spelling(db, user_id, new_email)
            return False
        await addresses.update_email(db, user_id, new_email)
        await tokens.delete_tokens(db, user_id, Purpose.RESET_PASSWORD)
        await tokens.delete_tokens(db, user_id, Purpose.VERIFY_EMAIL)
        if user.email is not None and user.email_verified:
            await messages.email_changed(
                db, username=user.username, old_email=user.email, new_email=new_email
            )
    security_event("email_changed", user_id=user_id, session_id=session_id)
    return True
