"""The TOTP second factor of an account: enrolment, confirmation, removal, and the check of a
code or a recovery code (the login's second step, which uses it, is ``service.mfa.login_step``).
The SQL is ``service.mfa.queries``.

**Enrolment** (OWASP ASVS 5.0 chapter V6, the OWASP MFA cheat sheet): the caller re-enters the
password, gets a new secret (as an ``otpauth://`` URI, a QR code and the base32 text) and
proves the authenticator holds it with a first code; only then is the factor on. That first
confirmation returns the ten recovery codes, once. A factor that is on must be turned off
(password and a code, or a recovery code) before another can be enrolled: replacing it with
only a session would let a stolen access token swap the victim's authenticator for the
thief's. Turning the factor on or off ends every other session of the account (a session that
an attacker may hold started under the old rules) and is a security event.

**Guesses**: every code checked here counts on the account's own second-factor counters
(``code_attempt``, in the credential state of ``service.mfa.queries``), whatever session asks,
never on the password's.

**Codes** are accepted once: the account's last accepted time step is stored and a code must be
of a later step (``service.security.totp``), checked and recorded in one conditional UPDATE, so
two requests with one code cannot both pass.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from service.accounts.flows import confirm_password
from service.accounts.queries import select_user_by_username
from service.db import Writer
from service.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from service.mfa.queries import (
    ALREADY_ON,
    CredentialState,
    FactorRecord,
    delete_factor,
    delete_factor_and_challenges,
    delete_recovery_code,
    insert_pending_factor,
    insert_recovery_codes,
    select_factor,
    select_is_enabled,
    select_recovery_code_count,
    select_state,
    update_confirmed,
    update_last_step,
)
from service.security import recovery_codes
from service.security.events import security_event
from service.security.secret_box import SecretBoxError
from service.security.totp import Enrolment
from service.services import Services
from service.sessions.logout import log_revoked
from service.sessions.queries import revoke_sessions, touch_live_session

WRONG_CODE_DETAIL = "The code is wrong, expired or already used."


@dataclass(frozen=True, slots=True)
class SecondFactor:
    """What a client presents as its second factor: a TOTP code or a recovery code."""

    code: str | None = None
    recovery_code: str | None = None


@dataclass(frozen=True, slots=True)
class FactorStatus:
    """Whether the factor is on, an enrolment waits for its code, and how many recovery
    codes are left."""

    enabled: bool
    pending: bool
    confirmed_at: datetime | None
    recovery_codes_left: int


def code_attempt(
    services: Services,
    user_id: uuid.UUID,
    state: CredentialState,
    address: str | None,
    failure: type[Exception] = ValidationFailed,
) -> AbstractAsyncContextManager[None]:
    """A code check of the account under the code limits: per account in its ``state`` and per
    client ``address``, whatever device credential or session the caller holds."""
    return services.limits.code_attempt(
        str(user_id), state.binding, address=address, failure=failure
    )


async def status(services: Services, user_id: uuid.UUID) -> FactorStatus:
    async with services.db.read() as db:
        factor = await select_factor(db, user_id)
        left = await select_recovery_code_count(db, user_id)
    confirmed_at = factor.confirmed_at if factor is not None else None
    return FactorStatus(
        enabled=confirmed_at is not None,
        pending=factor is not None and confirmed_at is None,
        confirmed_at=confirmed_at,
        recovery_codes_left=left if confirmed_at is not None else 0,
    )


async def start_enrolment(
    services: Services,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    current_password: str,
    *,
    address: str | None,
) -> Enrolment:
    """A new secret for the caller's authenticator, pending until ``confirm_enrolment``.

    ``Conflict`` while a factor is on; a wrong ``current_password`` is a ``ValidationFailed``
    on that field, limited as at ``/me/password``.
    """
    async with services.db.read() as db:
        if await select_is_enabled(db, user_id):
            raise Conflict(ALREADY_ON)
    user = await confirm_password(services, user_id, session_id, current_password, address=address)
    enrolment = services.totp.enrolment(user.username)
    sealed = services.secret_box.seal(enrolment.secret, str(user_id))
    async with services.db.write() as db:
        await insert_pending_factor(db, user_id, sealed, datetime.now(UTC))
    security_event("mfa_enrolment_started", user_id=user_id, session_id=session_id)
    return enrolment


async def confirm_enrolment(
    services: Services,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    code: str,
    *,
    address: str | None,
) -> list[str]:
    """Turn the pending factor on with its first code; the new recovery codes.

    ``Conflict`` without a pending enrolment; a wrong code is a ``ValidationFailed`` on
    ``code``, counted on the account's code limits. Every other session ends.
    """
    async with services.db.read() as db:
        factor = await select_factor(db, user_id)
        state = await select_state(db, user_id)
    if factor is None or state is None or factor.confirmed_at is not None:
        raise Conflict(
            ALREADY_ON
            if factor is not None
            else "No enrolment is waiting for a code: start one with POST /me/mfa/totp."
        )
    codes = recovery_codes.new_codes()
    now = datetime.now(UTC)
    async with code_attempt(services, user_id, state, address):
        step = services.totp.matching_step(_secret(services, factor), code, after=factor.last_step)
        if step is None:
            _code_refused(user_id, "wrong_code", purpose="enrolment")
            raise ValidationFailed(WRONG_CODE_DETAIL, errors=[_field_error("code")])
    async with services.db.write() as db:
        await _require_live_session(db, user_id, session_id, now)
        if not await update_confirmed(db, user_id, factor.secret, step, now):
            raise Conflict("The enrolment was confirmed or replaced meanwhile.")
        await insert_recovery_codes(db, user_id, [recovery_codes.digest(c) for c in codes], now)
        revoked = await revoke_sessions(db, user_id, now, keep=session_id)
    security_event("mfa_enabled", user_id=user_id, session_id=session_id)
    log_revoked(user_id, revoked, how="mfa_enabled")
    return codes


async def turn_off(
    services: Services,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    current_password: str,
    proof: SecondFactor,
    *,
    address: str | None,
) -> None:
    """Remove the factor after the password and a code (or a recovery code) check out.

    ``NotFound`` if no factor is on; a wrong password or code is a ``ValidationFailed`` on its
    field. Every other session ends.
    """
    async with services.db.read() as db:
        state = await select_state(db, user_id)
        if state is None or not await select_is_enabled(db, user_id):
            raise NotFound("No TOTP authenticator is on for this account.")
    await confirm_password(services, user_id, session_id, current_password, address=address)
    field = "code" if proof.code is not None else "recovery_code"
    now = datetime.now(UTC)
    async with (
        code_attempt(services, user_id, state, address),
        services.db.write() as db,
    ):
        await _require_live_session(db, user_id, session_id, now)
        if not await check_second_factor(services, db, user_id, proof):
            raise ValidationFailed(WRONG_CODE_DETAIL, errors=[_field_error(field)])
        await delete_factor(db, user_id)
        revoked = await revoke_sessions(db, user_id, now, keep=session_id)
    security_event("mfa_disabled", user_id=user_id, session_id=session_id)
    log_revoked(user_id, revoked, how="mfa_disabled")


async def reset(services: Services, username: str) -> uuid.UUID:
    """Remove the factor of ``username`` without any code, for an owner who lost both the app
    and the recovery codes (the operator checked who is asking, out of band). Every session
    of the account ends. ``NotFound`` for an unknown username or an account without a factor.
    """
    now = datetime.now(UTC)
    async with services.db.write() as db:
        user = await select_user_by_username(db, username)
        if user is None:
            raise NotFound("No such user.")
        if not await delete_factor_and_challenges(db, user.id):
            raise NotFound(f"{user.username} has no second factor.")
        revoked = await revoke_sessions(db, user.id, now)
    security_event("mfa_disabled", level=logging.WARNING, user_id=user.id, how="operator")
    log_revoked(user.id, revoked, how="mfa_disabled")
    return user.id


async def check_second_factor(
    services: Services, db: Writer, user_id: uuid.UUID, proof: SecondFactor
) -> bool:
    """Whether ``proof`` is a fresh code of the user's factor or one of their unused recovery
    codes; a code's step, or the recovery code, is spent in ``db``'s transaction."""
    factor = await select_factor(db, user_id)
    if factor is None or factor.confirmed_at is None:
        return False
    if proof.code is not None:
        step = services.totp.matching_step(
            _secret(services, factor), proof.code, after=factor.last_step
        )
        if step is None or not await update_last_step(db, user_id, step):
            _code_refused(user_id, "wrong_code")
            return False
        return True
    if proof.recovery_code is not None and await delete_recovery_code(
        db, user_id, recovery_codes.digest(proof.recovery_code)
    ):
        security_event("mfa_recovery_code_used", level=logging.WARNING, user_id=user_id)
        return True
    _code_refused(user_id, "wrong_recovery_code")
    return False


async def _require_live_session(
    db: Writer, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> None:
    """The calling session must still be live in the transaction that changes the factor (it
    also locks the row), so a logout racing with the change wins, as at ``/me/password``."""
    if not await touch_live_session(db, user_id, session_id, now):
        raise Unauthorized("The session of this access token has ended.", token_presented=True)


def _secret(services: Services, factor: FactorRecord) -> str:
    """The factor's secret in clear; a value the key cannot open matches no code (and is
    logged): the owner can still log in with a recovery code, and enrol again."""
    try:
        return services.secret_box.open(factor.secret, str(factor.user_id))
    except SecretBoxError as error:
        security_event(
            "mfa_secret_unreadable", level=logging.ERROR, user_id=factor.user_id, reason=str(error)
        )
        return ""


def _code_refused(user_id: uuid.UUID, reason: str, purpose: str = "verification") -> None:
    security_event(
        "mfa_code_refused", level=logging.WARNING, user_id=user_id, reason=reason, purpose=purpose
    )


def _field_error(field: str) -> dict[str, str]:
    return {"field": field, "message": "is wrong, expired or already used"}
