"""Who may have an email address: claims, the first verification wins, and what is told whom.

An address an account gives (at signup, ``/me/email``) is a **claim** until the link mailed to
it is followed; any number of accounts may claim one address, so a claim never blocks the
address's owner. The **first to verify wins** (``confirm``): in one transaction that locks
every account with the address, the winner's address becomes verified, every other claim is
taken off its account with its links, and the mailbox, the only one those accounts gave, is
told which accounts lost it. From then on the address is taken: unique among verified
addresses (a partial unique index).

Nothing anyone sees in an answer depends on whether an address is taken (as Supabase Auth and
Ory Kratos do it). Signup, ``/me/email`` and ``/me/email/resend`` answer as for a free address
and leave the message to ``mail_claim``, run after the answer: a free (or only claimed)
address gets a verification link; a verified one's holder gets an "address in use" notice
instead, at most ``EMAIL_REQUESTS_PER_HOUR`` an hour, whoever asks. Only the mailbox sees the
difference.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.accounts import addresses, messages, tokens
from service.accounts.addresses import Claim
from service.accounts.queries import select_user
from service.accounts.verification import send_verification
from service.db import Writer
from service.errors import InvalidAccountToken
from service.security.events import security_event
from service.security.tokens.account import Purpose
from service.services import Services

UNUSABLE_LINK = "The verification token is unknown, used, expired or for an earlier address."
#: Losers named in one ``claims_ended`` message; more are counted.
NAMED_LOSERS = 20


async def mail_claim(services: Services, user_id: uuid.UUID) -> None:
    """Mail the account's unverified address a verification link, or, when another account
    has verified that address, its holder a notice instead (see the module doc)."""
    notified = False
    async with services.db.write() as db:
        user = await select_user(db, user_id)
        if user is None or user.email is None or user.email_verified:
            return
        holder = await addresses.select_holder(db, user.email)
        if holder is None or holder.email is None:
            await send_verification(db, services.settings, user.id, user.username, user.email)
        elif await services.limits.mail_allowed("notice", f"email:{holder.email_key}"):
            await messages.address_in_use(
                db, username=holder.username, email=holder.email, claimant=user.username
            )
            notified = True
    if holder is None:
        security_event("email_verification_sent", user_id=user.id)
    else:
        security_event(
            "email_address_in_use", user_id=user.id, holder_id=holder.id, notified=notified
        )


async def confirm(services: Services, token: str) -> uuid.UUID:
    """Spend a verification token: its address becomes the account's, verified, unless another
    account verified it first; the account's id.

    ``InvalidAccountToken`` for a token that is unknown, spent, expired, sent to an address the
    account no longer has, or whose address another account verified first (that claim is
    then taken off this account).
    """
    now = datetime.now(UTC)
    async with services.db.write() as db:
        live = await tokens.select_live_token(db, token, Purpose.VERIFY_EMAIL, now)
        if live is None:
            raise InvalidAccountToken(UNUSABLE_LINK)
        # Lock first, then spend: a concurrent verification of the address waits here.
        claims = await addresses.select_claims_for_update(db, live.binding)
        spent = await tokens.delete_token_returning(db, token, Purpose.VERIFY_EMAIL, now)
        mine = next((c for c in claims if spent and c.id == spent.user_id), None)
        if mine is None:
            raise InvalidAccountToken(UNUSABLE_LINK)
        holder = next((c for c in claims if c.email_verified_at and c.id != mine.id), None)
        winner = holder or mine
        if holder is None:
            await addresses.update_email_verified(db, mine.id, live.binding, now)
        losers = [c for c in claims if c.id != winner.id and c.email_verified_at is None]
        await _end_claims(db, winner, losers)
    for loser in losers:
        security_event("email_claim_ended", user_id=loser.id, holder_id=winner.id)
    if holder is not None:
        raise InvalidAccountToken(UNUSABLE_LINK)
    security_event("email_verified", user_id=mine.id)
    return mine.id


async def _end_claims(db: Writer, winner: Claim, losers: list[Claim]) -> None:
    """Take the address and its links off ``losers``, and tell its mailbox which accounts
    lost it."""
    if not losers:
        return
    await addresses.delete_claims(db, [loser.id for loser in losers])
    for loser in losers:
        await tokens.delete_tokens(db, loser.id, Purpose.VERIFY_EMAIL)
    names = [loser.username for loser in losers[:NAMED_LOSERS]]
    if len(losers) > NAMED_LOSERS:
        names.append(f"and {len(losers) - NAMED_LOSERS} more")
    await messages.claims_ended(db, username=winner.username, email=winner.email, others=names)
