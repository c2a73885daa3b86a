"""Signed JWTs that name a user and nothing else: the common part of device credentials and
``mfa_token``s.

Each kind has its own ``typ`` (RFC 8725 section 3.11), is signed and verified with the session
tokens' key set (so it survives key rotation the way they do) and carries exactly ``iss``,
``aud``, ``sub`` (the user id), ``jti`` (a random id), ``iat``, ``nbf`` and ``exp``, all of them
required on verification. Their ``aud`` is never the access tokens' (the service passes its
token endpoint's, ``service.security.tokens.audiences``), so a verifier that ignores ``typ`` still
refuses them as access tokens (RFC 8725 section 3.12).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from service.security.keys import KeySet
from service.security.tokens.verification import LEEWAY_SECONDS, TokenError, verified_claims


@dataclass(frozen=True, slots=True)
class IssuedUserToken:
    """A fresh token: its text, its ``jti`` and when it expires (Unix time)."""

    value: str
    token_id: str
    expires_at: int


class UserTokens:
    """Issues and verifies the tokens of one ``typ`` for users."""

    def __init__(
        self,
        typ: str,
        *,
        keys: KeySet,
        issuer: str,
        audience: str,
        ttl: int,
        legacy_audiences: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Tokens carry ``audience``; verification accepts it and ``legacy_audiences``."""
        self._typ = typ
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self._clock = clock
        required: ClaimsOption = {"essential": True}
        self._claims = JWTClaimsRegistry(
            now=lambda: int(clock()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "values": [audience, *legacy_audiences]},
            sub=required,
            jti=required,
            iat=required,
            nbf=required,
            exp=required,
        )

    def issue(self, user_id: uuid.UUID) -> IssuedUserToken:
        """A new token for ``user_id``, with a new random ``jti``, valid from now for the TTL."""
        now = int(self._clock())
        token_id = secrets.token_urlsafe(16)
        header = {"alg": self._keys.algorithm, "kid": self._keys.signing_kid, "typ": self._typ}
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "jti": token_id,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
        }
        value = jwt.encode(
            header, claims, self._keys.signing_key, algorithms=[self._keys.algorithm]
        )
        return IssuedUserToken(value=value, token_id=token_id, expires_at=now + self._ttl)

    def verify(self, value: str) -> dict[str, Any]:
        """The claims of ``value``; ``TokenError`` (saying why) unless every check passes."""
        return verified_claims(value, self._keys, self._typ, self._claims)


def subject(claims: dict[str, Any]) -> tuple[uuid.UUID, str]:
    """The user id (``sub``) and ``jti`` of verified claims; ``TokenError`` if malformed."""
    try:
        return uuid.UUID(str(claims["sub"])), str(claims["jti"])
    except (ValueError, KeyError, TypeError) as error:
        raise TokenError(f"rejected: {error}") from error
