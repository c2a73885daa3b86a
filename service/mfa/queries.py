"""The SQL of the second factor: the TOTP factor, its recovery codes, the stored ``mfa_token``
challenges, and the account's credential state.

The credential state of an account is its password hash and its confirmed factor, digested by
``password_binding`` as for reset links. An ``mfa_token`` is stored bound to the state it was
issued under (``service.security.tokens.mfa.challenge_key``), and wrong codes are counted per
account in its state (``Limits.code_attempt``). A new state, which only the owner or the
operator can make (a password change or reset, the factor turned off or on, ``service
mfa-off``), kills every pending ``mfa_token`` and starts the code counts afresh; a guesser who
holds only the password can make neither.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from service.db import Reader, Writer, record
from service.db.models import MfaChallenge, RecoveryCode, TotpFactor, User
from service.errors import Conflict
from service.security.tokens.account import password_binding
from service.security.tokens.mfa import IssuedMfaToken

ALREADY_ON = (
    "A TOTP authenticator is already on for this account: turn it off first "
    "(DELETE /me/mfa/totp), then enrol the new one."
)


@dataclass(frozen=True, slots=True)
class FactorRecord:
    """A row of ``totp_factors``."""

    user_id: uuid.UUID
    secret: str
    created_at: datetime
    confirmed_at: datetime | None
    last_step: int | None


async def select_factor(db: Reader, user_id: uuid.UUID) -> FactorRecord | None:
    return record(
        FactorRecord, await db.first(select(TotpFactor).where(TotpFactor.user_id == user_id))
    )


async def select_is_enabled(db: Reader, user_id: uuid.UUID) -> bool:
    found = await db.first(
        select(TotpFactor.user_id).where(
            TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
        )
    )
    return found is not None


async def insert_pending_factor(
    db: Writer, user_id: uuid.UUID, sealed_secret: str, now: datetime
) -> None:
    """Replace any unconfirmed enrolment of the user with a new one; ``Conflict`` if a
    confirmed factor exists (or another enrolment raced this one in)."""
    await db.run(
        delete(TotpFactor).where(TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_(None))
    )
    try:
        await db.run(
            insert(TotpFactor).values(user_id=user_id, secret=sealed_secret, created_at=now)
        )
    except IntegrityError:
        raise Conflict(ALREADY_ON) from None


async def update_confirmed(
    db: Writer, user_id: uuid.UUID, sealed_secret: str, step: int, now: datetime
) -> bool:
    """Turn the pending factor with ``sealed_secret`` on, recording ``step`` as used; False if
    it is not pending (any more): confirmed meanwhile, or replaced by a newer enrolment whose
    secret the checked code says nothing about."""
    confirmed = await db.run(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == user_id,
            TotpFactor.secret == sealed_secret,
            TotpFactor.confirmed_at.is_(None),
        )
        .values(confirmed_at=now, last_step=step)
    )
    return confirmed == 1


async def update_last_step(db: Writer, user_id: uuid.UUID, step: int) -> bool:
    """Record ``step`` as used if it is later than the last one used: False for a replay."""
    updated = await db.run(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == user_id,
            TotpFactor.confirmed_at.is_not(None),
            (TotpFactor.last_step.is_(None)) | (TotpFactor.last_step < step),
        )
        .values(last_step=step)
    )
    return updated == 1


async def delete_factor(db: Writer, user_id: uuid.UUID) -> bool:
    """Remove the user's factor and recovery codes; False if no factor was on."""
    await db.run(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    deleted = await db.run(
        delete(TotpFactor).where(
            TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)
        )
    )
    return deleted == 1


async def insert_recovery_codes(
    db: Writer, user_id: uuid.UUID, hashes: list[str], now: datetime
) -> None:
    await db.run(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    for code_hash in hashes:
        await db.run(
            insert(RecoveryCode).values(user_id=user_id, code_hash=code_hash, created_at=now)
        )


async def delete_recovery_code(db: Writer, user_id: uuid.UUID, code_hash: str) -> bool:
    """Spend one recovery code of the user: True if it was there (unused)."""
    deleted = await db.run(
        delete(RecoveryCode).where(
            RecoveryCode.user_id == user_id, RecoveryCode.code_hash == code_hash
        )
    )
    return deleted == 1


async def select_recovery_code_count(db: Reader, user_id: uuid.UUID) -> int:
    count = await db.scalar(
        select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user_id)
    )
    return int(count or 0)


_SELECT_STATE = (
    select(User.password_hash, User.is_active, TotpFactor.secret, TotpFactor.confirmed_at)
    .select_from(User)
    .outerjoin(TotpFactor, TotpFactor.user_id == User.id)
    .where(User.id == bindparam("user_id"))
)


@dataclass(frozen=True, slots=True)
class CredentialState:
    """An account's ``binding`` (the digest of its password hash and confirmed factor), and
    whether it is active with a confirmed factor: only then may an ``mfa_token`` log it in."""

    binding: str
    factor_login: bool


async def select_state(db: Reader, user_id: uuid.UUID) -> CredentialState | None:
    """The account's credential state; None if there is no such account."""
    row = await db.first(_SELECT_STATE, {"user_id": user_id})
    if row is None:
        return None
    confirmed = row["confirmed_at"] is not None
    return CredentialState(
        binding=password_binding(row["password_hash"], row["secret"] if confirmed else ""),
        factor_login=bool(row["is_active"]) and confirmed,
    )


async def insert_challenge(
    db: Writer, user_id: uuid.UUID, key: str, token: IssuedMfaToken, now: datetime
) -> None:
    """Remember an issued ``mfa_token`` by its ``challenge_key`` until it is spent; the user's
    expired ones go."""
    await db.run(
        delete(MfaChallenge).where(MfaChallenge.user_id == user_id, MfaChallenge.expires_at < now)
    )
    await db.run(
        insert(MfaChallenge).values(
            token_id=key,
            user_id=user_id,
            expires_at=datetime.fromtimestamp(token.expires_at, UTC),
        )
    )


async def select_open_challenge(db: Reader, user_id: uuid.UUID, key: str, now: datetime) -> bool:
    found = await db.first(
        select(MfaChallenge.token_id).where(
            MfaChallenge.user_id == user_id,
            MfaChallenge.token_id == key,
            MfaChallenge.expires_at > now,
        )
    )
    return found is not None


async def delete_challenge(db: Writer, user_id: uuid.UUID, key: str, now: datetime) -> bool:
    """Spend an ``mfa_token``: True if it was unspent and unexpired."""
    deleted = await db.run(
        delete(MfaChallenge).where(
            MfaChallenge.user_id == user_id,
            MfaChallenge.token_id == key,
            MfaChallenge.expires_at > now,
        )
    )
    return deleted == 1


async def delete_factor_and_challenges(db: Writer, user_id: uuid.UUID) -> bool:
    """Remove the user's factor (confirmed or pending), recovery codes and open challenges;
    False, with nothing removed, if there was no factor."""
    removed = await db.run(delete(TotpFactor).where(TotpFactor.user_id == user_id))
    if not removed:
        return False
    await db.run(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    await db.run(delete(MfaChallenge).where(MfaChallenge.user_id == user_id))
    return True
