"""The credential state that the second factor's ``mfa_token``s and code limits are bound to.

The state of an account is its password hash and its confirmed factor, digested by
``password_binding`` as for reset links. An ``mfa_token`` is stored bound to the state it was
issued under (``service.security.tokens.mfa.challenge_key``), and wrong codes are counted per
account in its state (``Limits.code_attempt``). A new state, which only the owner or the
operator can make (a password change or reset, the factor turned off or on, ``service
mfa-off``), kills every pending ``mfa_token`` and starts the code counts afresh; a guesser who
holds only the password can make neither.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from service.db import Reader
from service.db.models import TotpFactor, User
from service.errors import ValidationFailed
from service.security.tokens.account import password_binding
from service.services import Services

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
