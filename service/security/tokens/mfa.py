"""The ``mfa_token`` of a login that still needs its second factor.

``/login`` answers a correct password of an account with a second factor on with this token
instead of a session: it proves the password step only, for ``MFA_TOKEN_TTL`` seconds, and only
``/login/mfa`` takes it. It is a JWS-signed JWT like the session tokens, signed and verified
with the same key set, with its own ``typ`` ``mfa+jwt`` and no ``sid`` (which every session
token must carry), so it is never accepted as an access or refresh token nor one of those as an
``mfa_token`` (RFC 8725 section 3.11). Its claims are ``iss``, ``aud`` (the token endpoint's
URL, as on refresh tokens: ``service.security.tokens.audiences``), ``sub`` (the user id), ``jti`` (a
random id the database keeps until the token is spent, which makes it single-use), ``iat``,
``nbf`` and ``exp``.

The database keeps the ``jti`` bound to the credentials the token was issued under, as a reset
link is bound to its password (``password_binding``): ``challenge_key`` digests the two, so a
token stops matching its stored row once the password or the second factor changes, whatever
changed it (a password change or reset, the factor turned off, or off and on again).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from service.security.keys import KeySet
from service.security.tokens.account import token_digest
from service.security.tokens.user import UserTokens, subject
from service.security.tokens.verification import TokenError

MFA_TYP: Final = "mfa+jwt"


@dataclass(frozen=True, slots=True)
class IssuedMfaToken:
    value: str
    token_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class VerifiedMfaToken:
    user_id: uuid.UUID
    token_id: str


class MfaTokens:
    """Issues ``mfa_token``s for a user whose password checked out, and verifies them."""

    def __init__(
        self,
        *,
        keys: KeySet,
        issuer: str,
        audience: str,
        ttl: int,
        legacy_audiences: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Tokens carry ``audience``; verification accepts it and ``legacy_audiences``
        (``service.security.tokens.audiences``)."""
        self._tokens = UserTokens(
            MFA_TYP,
            keys=keys,
            issuer=issuer,
            audience=audience,
            ttl=ttl,
            legacy_audiences=legacy_audiences,
            clock=clock,
        )

    def issue(self, user_id: uuid.UUID) -> IssuedMfaToken:
        issued = self._tokens.issue(user_id)
        return IssuedMfaToken(
            value=issued.value, token_id=issued.token_id, expires_at=issued.expires_at
        )

    def verify(self, value: str) -> VerifiedMfaToken:
        """The claims of ``value``; ``TokenError`` (saying why) unless every check passes."""
        claims = self._tokens.verify(value)
        if "sid" in claims:
            raise TokenError("a session token is not an mfa_token")
        user_id, token_id = subject(claims)
        return VerifiedMfaToken(user_id=user_id, token_id=token_id)


def challenge_key(token_id: str, binding: str) -> str:
    """What the database keeps of an issued ``mfa_token``: a digest of its ``jti`` and of the
    ``password_binding`` of the password and factor it was issued under."""
    return token_digest(f"{token_id}:{binding}")
