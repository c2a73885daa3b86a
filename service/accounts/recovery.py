"""Password reset by email: ask for a link (``forgot``), then set a new password with it.

``forgot`` answers the same whether or not an account has the address, in the same time: the
route only counts the request against the limits and leaves the lookup, the token and the
message to ``send_reset_link``, run after the answer is sent. Nothing the caller sees depends
on the address being known (OWASP ASVS 5.0 V6.4.1, the Forgot Password cheat sheet).

Links go only to a verified address: an unverified one is a claim that anybody can make on
someone else's mailbox. A reset token is bound to the password it may replace
(``password_binding``): any password change, whatever made it, kills the tokens issued
before; a newer request supersedes older ones; a change of address kills them too. ``reset``
spends the token, stores the new hash, ends every session of the account (their access tokens
die at once) and sends a notice, all in one transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from service.accounts import addresses, messages, tokens
from service.accounts.queries import select_user, update_password_hash
from service.errors import InvalidAccountToken, ValidationFailed
from service.limits.limiter import address_key
from service.security.email_addresses import email_key
from service.security.events import security_event
from service.security.passwords import RULE_SENTENCES, SAME_AS_USERNAME, is_username
from service.security.tokens.account import Purpose, password_binding
from service.services import Services
from service.sessions.logout import log_revoked
from service.sessions.queries import revoke_sessions

UNUSABLE_LINK = "The reset token is unknown, used, expired or superseded: ask for a new link."


async def admit_forgot(services: Services, email: str, *, address: str | None) -> None:
    """Count a reset request per email address and client network, and per client network
    (``TooManyRequests``). Every request counts, sent or not: the answer must not tell. Keyed
    by the network too, so a flood from one never stops the owner's own reset, and apart from
    the signup quotas, which anybody can spend on an address."""
    network = f"address:{address_key(address)}"
    await services.limits.admit_mail("reset", f"email:{email_key(email)}|{network}", network)


async def send_reset_link(services: Services, email: str) -> None:
    """If an account has verified ``email``, supersede its reset tokens and mail it a new one.

    An unverified address gets nothing: it is only a claim, perhaps on someone else's mailbox.
    """
    async with services.db.read() as db:
        user = await addresses.select_holder(db, email)
    if user is None or user.email is None:
        security_event("password_reset_requested", known=False)
        return
    settings = services.settings
    async with services.db.write() as db:
        token = await tokens.insert_token(
            db,
            user.id,
            Purpose.RESET_PASSWORD,
            password_binding(user.password_hash),
            now=datetime.now(UTC),
            ttl=settings.reset_token_ttl,
        )
        await messages.password_reset(
            db, settings, username=user.username, email=user.email, token=token
        )
    security_event("password_reset_requested", known=True, user_id=user.id)


async def reset(services: Services, token: str, new_password: str) -> None:
    """Set a new password with a reset token; every session of the account ends.

    The schema has applied the length and common-password rules; the username rule is
    applied here. ``InvalidAccountToken`` if the token is not live or its password changed.
    """
    now = datetime.now(UTC)
    async with services.db.read() as db:
        # Refused early, before bcrypt, when the token is not live.
        live = await tokens.select_live_token(db, token, Purpose.RESET_PASSWORD, now)
        user = None if live is None else await select_user(db, live.user_id)
    if user is None:
        security_event("password_reset_failed", level=logging.WARNING, reason="invalid_token")
        raise InvalidAccountToken(UNUSABLE_LINK)
    if is_username(new_password, user.username):
        raise ValidationFailed(
            RULE_SENTENCES[SAME_AS_USERNAME],
            errors=[{"field": "new_password", "message": SAME_AS_USERNAME}],
        )
    new_hash = await services.passwords.hash(new_password)
    now = datetime.now(UTC)
    async with services.db.write() as db:
        spent = await tokens.delete_token_returning(db, token, Purpose.RESET_PASSWORD, now)
        current = await select_user(db, user.id)
        if (
            spent is None
            or current is None
            or spent.binding != password_binding(current.password_hash)
        ):
            raise InvalidAccountToken(UNUSABLE_LINK)
        await update_password_hash(db, current.id, new_hash)
        revoked = await revoke_sessions(db, current.id, now)
        if current.email is not None and current.email_verified:
            await messages.password_changed(db, username=current.username, email=current.email)
    security_event("password_reset", user_id=current.id)
    log_revoked(current.id, revoked, how="password_reset")
