"""The second step of a login with the TOTP factor on: the ``mfa_token``'s stored challenge and
its spending at ``/login/mfa``.

A correct password of an account with a confirmed factor gets an ``mfa_token``
(``service.security.tokens.mfa``) instead of a session. Its ``jti`` is stored, bound to the
account's credential state (``service.mfa.queries``), until a code or a recovery code spends
it, so it completes one login at most, and none once the password or the factor changed or the
account was disabled: such a token is refused exactly as an expired one.

Wrong codes count per account in its credential state, whatever device credential the client
presents, so no number of devices or addresses multiplies a guesser's allowance; only someone
who knows the password gets this far, so the owner's devices get no allowance of their own
(``service.limits``, docs/mfa.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.db import Reader
from service.errors import InvalidGrant
from service.mfa.flows import WRONG_CODE_DETAIL, SecondFactor, check_second_factor, code_attempt
from service.mfa.queries import (
    CredentialState,
    delete_challenge,
    insert_challenge,
    select_open_challenge,
    select_state,
)
from service.security.events import security_event
from service.security.tokens.mfa import IssuedMfaToken, challenge_key
from service.security.tokens.verification import TokenError
from service.services import Services

MFA_TOKEN_DETAIL = "The mfa_token is invalid, expired or already used: log in again."  # noqa: S105


class WrongCode(InvalidGrant):
    """A wrong second-factor code at ``/login/mfa``: counted on the code limits."""


async def challenge(services: Services, user_id: uuid.UUID) -> IssuedMfaToken | None:
    """An ``mfa_token`` if the account has a factor on (the login needs a second step), bound
    to the account's password and factor as they are now."""
    async with services.db.read() as db:
        state = await select_state(db, user_id)
    if state is None or not state.factor_login:
        return None
    token = services.mfa_tokens.issue(user_id)
    async with services.db.write() as db:
        key = challenge_key(token.token_id, state.binding)
        await insert_challenge(db, user_id, key, token, datetime.now(UTC))
    security_event("mfa_required", user_id=user_id)
    return token


async def complete_login(
    services: Services, mfa_token: str, proof: SecondFactor, *, address: str | None
) -> uuid.UUID:
    """The user whose login ``mfa_token`` started, once ``proof`` checks out; the token is spent.

    ``InvalidGrant`` for a bad, expired or spent token, one issued under another password or
    factor, or one of a disabled account; ``WrongCode`` for a wrong code; ``TooManyRequests``
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
        state = await _open_state(db, user_id, token.token_id, now)
    async with (
        code_attempt(services, user_id, state, address, failure=WrongCode),
        services.db.write() as db,
    ):
        # Spent first, by the state read in this transaction: a password or factor change
        # committed since the read above leaves nothing to spend, and a wrong code below rolls
        # the spending back.
        current = await select_state(db, user_id)
        if (
            current is None
            or not current.factor_login
            or not await delete_challenge(
                db, user_id, challenge_key(token.token_id, current.binding), now
            )
        ):
            raise InvalidGrant(MFA_TOKEN_DETAIL)
        if not await check_second_factor(services, db, user_id, proof):
            raise WrongCode(WRONG_CODE_DETAIL)
    return user_id


async def _open_state(
    db: Reader, user_id: uuid.UUID, token_id: str, now: datetime
) -> CredentialState:
    """The account's credential state if the token with ``token_id`` is still open in it, else
    ``InvalidGrant`` before any code is checked or counted."""
    state = await select_state(db, user_id)
    if state is None or not state.factor_login:
        reason = "no account" if state is None else "account disabled or factor off"
    elif not await select_open_challenge(db, user_id, challenge_key(token_id, state.binding), now):
        reason = "spent, expired, or issued under another password or factor"
    else:
        return state
    security_event("mfa_token_refused", user_id=user_id, reason=reason)
    raise InvalidGrant(MFA_TOKEN_DETAIL)
