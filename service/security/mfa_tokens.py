"""The ``mfa_token`` of a login that still needs its second factor.

``/login`` answers a correct password of an account with a second factor on with this token
instead of a session: it proves the password step only, for ``MFA_TOKEN_TTL`` seconds, and
only ``/login/mfa`` takes it. It is a JWS-signed JWT like the session tokens, signed and
verified with the same key set, with its own ``typ`` ``mfa+jwt`` and no ``sid`` (which every
session token must carry), so it is never accepted as an access or refresh token nor one of
those as an ``mfa_token`` (RFC 8725 section 3.11). Its claims are ``iss``, ``aud``, ``sub``
(the user id), ``jti`` (a random id the database keeps until the token is spent, which makes
it single-use), ``iat``, ``nbf`` and ``exp``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from joserfc import jwt
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from service.security.keys import KeySet
from service.security.tokens import LEEWAY_SECONDS, TokenError, verified_claims

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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self.ttl = ttl
        self._clock = clock
        required: ClaimsOption = {"essential": True}
        self._claims = JWTClaimsRegistry(
            now=lambda: int(clock()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub=required,
            jti=required,
            iat=required,
            nbf=required,
            exp=required,
        )

    def issue(self, user_id: uuid.UUID) -> IssuedMfaToken:
        now = int(self._clock())
        token_id = secrets.token_urlsafe(16)
        header = {"alg": self._keys.algorithm, "kid": self._keys.signing_kid, "typ": MFA_TYP}
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "jti": token_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
        }
        value = jwt.encode(
            header, claims, self._keys.signing_key, algorithms=[self._keys.algorithm]
        )
        return IssuedMfaToken(value=value, token_id=token_id, expires_at=now + self.ttl)

    def verify(self, value: str) -> VerifiedMfaToken:
        """The claims of ``value``; ``TokenError`` (saying why) unless every check passes."""
        claims = verified_claims(value, self._keys, MFA_TYP, self._claims)
        if "sid" in claims:
            raise TokenError("a session token is not an mfa_token")
        try:
            return VerifiedMfaToken(
                user_id=uuid.UUID(str(claims["sub"])), token_id=str(claims["jti"])
            )
        except (ValueError, KeyError, TypeError) as error:
            raise TokenError(f"rejected: {error}") from error
