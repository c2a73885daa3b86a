"""The second step of a login with the TOTP factor on: the ``mfa_token``'s stored challenge and
its spending at ``/login/mfa``.

A correct password of an account with a confirmed factor gets an ``mfa_token``
(``service.security.mfa_tokens``) instead of a session. Its ``jti`` is stored until it is spent
at ``/login/mfa`` with a code or a recovery code, so it completes one login at most. Wrong
codes count on the account's own second-factor counter, or on that of a known device (a device
credential of this account), like passwords (``service.limits``): whoever knows the password
can use up the account's allowance, but not that of a device the owner logged in from before,
and wrong codes never use up the password allowance or the other way round.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select

from service.auth import devices, mfa
from service.db import Reader, Writer
from service.db.models import MfaChallenge
from service.errors import InvalidGrant
from service.security.events import security_event
from service.security.mfa_tokens import IssuedMfaToken
from service.security.tokens import TokenError
from service.services import Services

MFA_TOKEN_DETAIL = "The mfa_token is invalid, expired or already used: log in again."  # noqa: S105


class WrongCode(InvalidGrant):
    """A wrong second-factor code at ``/login/mfa``: counted on the code limits."""


# --- data functions -------------------------------------------------------------------------


async def insert_challenge(db: Writer, user_id: uuid.UUID, token: IssuedMfaToken) -> None:
    """Remember an issued ``mfa_token`` until it is spent; the user's expired ones go."""
    now = datetime.now(UTC)
    await db.run(
        delete(MfaChallenge).where(MfaChallenge.user_id == user_id, MfaChallenge.expires_at < now)
    )
    await db.run(
        insert(MfaChallenge).values(
            token_id=token.token_id,
            user_id=user_id,
            expires_at=datetime.fromtimestamp(token.expires_at, UTC),
        )
    )


async def select_open_challenge(
    db: Reader, user_id: uuid.UUID, token_id: str, now: datetime
) -> bool:
    found = await db.first(
        select(MfaChallenge.token_id).where(
            MfaChallenge.user_id == user_id,
            MfaChallenge.token_id == token_id,
            MfaChallenge.expires_at > now,
        )
    )
    return found is not None


async def delete_challenge(db: Writer, user_id: uuid.UUID, token_id: str, now: datetime) -> bool:
    """Spend an ``mfa_token``: True if it was unspent and unexpired."""
    deleted = await db.run(
        delete(MfaChallenge).where(
            MfaChallenge.user_id == user_id,
            MfaChallenge.token_id == token_id,
            MfaChallenge.expires_at > now,
        )
    )
    return deleted == 1


# --- rules ----------------------------------------------------------------------------------


async def challenge(services: Services, user_id: uuid.UUID) -> IssuedMfaToken | None:
    """An ``mfa_token`` if the account has a factor on (the login needs a second step)."""
    async with services.db.read() as db:
        if not await mfa.select_is_enabled(db, user_id):
            return None
    token = services.mfa_tokens.issue(user_id)
    async with services.db.write() as db:
        await insert_challenge(db, user_id, token)
    security_event("mfa_required", user_id=user_id)
    return token


async def complete_login(
    services: Services,
    mfa_token: str,
    proof: mfa.SecondFactor,
    *,
    address: str | None,
    device_credential: str | None,
) -> uuid.UUID:
    """The user whose login ``mfa_token`` started, once ``proof`` checks out; the token is spent.

    ``InvalidGrant`` for a bad, expired or spent token, or a wrong code; ``TooManyRequests``
    while a code limit holds.
    """
    try:
        token = services.mfa_tokens.verify(mfa_token)
    except TokenError as error:
        security_event("mfa_token_refused", reason=str(error))
        raise InvalidGrant(MFA_TOKEN_DETAIL) from None
    user_id = token.user_id
    now = datetime.now(UTC)
    async with services.db.read() as db:
        if not await select_open_challenge(db, user_id, token.token_id, now):
            security_event("mfa_token_refused", user_id=user_id, reason="spent or expired")
            raise InvalidGrant(MFA_TOKEN_DETAIL)
    device = devices.recognised_device(services, device_credential, user_id)
    async with (
        mfa.code_attempt(services, user_id, device, address, failure=WrongCode),
        services.db.write() as db,
    ):
        if not await mfa.check_second_factor(services, db, user_id, proof):
            raise WrongCode(mfa.WRONG_CODE_DETAIL)
        if not await delete_challenge(db, user_id, token.token_id, now):
            raise InvalidGrant(MFA_TOKEN_DETAIL)  # spent by a concurrent request: roll back
    return user_id
