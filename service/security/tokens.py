"""Access and refresh JWTs: issue them, and verify every part of one before trusting it.

A token is a JWS-signed JWT (RFC 7519) with header ``alg``, ``kid`` and ``typ`` and claims
``iss``, ``aud``, ``sub``, ``iat``, ``nbf``, ``exp``, ``jti`` and ``sid`` (the login session).
``typ`` separates the kinds: ``at+jwt`` for access tokens (RFC 9068 section 2.1) and
``refresh+jwt`` for refresh tokens, so one kind is never accepted as the other (RFC 8725
section 3.11). Verification accepts only the configured algorithm (RFC 8725 section 3.1), only
known key ids, and no header that points at a key elsewhere (``jku``, ``x5u``, ``jwk``...).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Final

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

ACCESS_TYP: Final = "at+jwt"
REFRESH_TYP: Final = "refresh+jwt"
#: Header parameters a token of ours may carry; anything else is refused.
ALLOWED_HEADER: Final = frozenset({"alg", "kid", "typ"})
#: Clock skew tolerated between instances for ``nbf``, ``iat`` and ``exp``.
LEEWAY_SECONDS: Final = 5
#: No token of ours comes near this; longer input is refused before any parsing.
MAX_TOKEN_LENGTH: Final = 4096
#: How many verified tokens are remembered (a few hundred KiB at most).
VERIFIED_CACHE_SIZE: Final = 4096


class TokenError(Exception):
    """The token cannot be trusted; the message says why (for logs, not for clients)."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The claims of a token whose signature, header and claims all checked out."""

    typ: str
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    not_before: int
    expires_at: int

    def in_lifetime(self, now: float) -> bool:
        """Whether ``now`` lies between ``nbf`` and ``exp``, give or take the leeway."""
        return self.not_before - LEEWAY_SECONDS <= now <= self.expires_at + LEEWAY_SECONDS


@dataclass(frozen=True, slots=True)
class IssuedToken:
    value: str
    token_id: str
    expires_at: int


class TokenService:
    """Signs and verifies the service's tokens with one signing key and a set of verifying keys."""

    def __init__(self, *, secret: str, algorithm: str, issuer: str, audience: str) -> None:
        key = OctKey.import_key(secret)
        self._kid = key.thumbprint()
        key.ensure_kid()
        self._signing_key = key
        self._verifying_keys = {self._kid: key}
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._verified: dict[str, VerifiedToken] = {}

    def issue(
        self, typ: str, *, user_id: uuid.UUID, session_id: uuid.UUID, ttl: int, not_after: int
    ) -> IssuedToken:
        """Sign a token of kind ``typ``; it expires after ``ttl`` seconds or at ``not_after``."""
        now = int(time.time())
        token_id = secrets.token_urlsafe(16)
        expires_at = min(now + ttl, not_after)
        header = {"alg": self._algorithm, "kid": self._kid, "typ": typ}
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": token_id,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
        }
        value = jwt.encode(header, claims, self._signing_key, algorithms=[self._algorithm])
        return IssuedToken(value=value, token_id=token_id, expires_at=expires_at)

    def verify(self, value: str, typ: str) -> VerifiedToken:
        """Check header, signature and claims of ``value`` as a token of kind ``typ``.

        A client sends the same access token with every request until it expires, so tokens
        that passed are remembered by their exact text: a hit skips the signature and claim
        checks (~40 µs) but still checks the kind and the lifetime. Memory stays bounded by
        ``VERIFIED_CACHE_SIZE``; the oldest entry goes first.
        """
        now = time.time()
        remembered = self._verified.get(value)
        if remembered is not None and remembered.typ == typ and remembered.in_lifetime(now):
            return remembered
        verified = self._verify(value, typ)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[value] = verified
        return verified

    def _verify(self, value: str, typ: str) -> VerifiedToken:
        if len(value) > MAX_TOKEN_LENGTH or value.count(".") != 2:
            raise TokenError("not a compact JWS")
        try:
            header = jws.extract_compact(value.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError) as error:
            raise TokenError(f"unreadable header: {error}") from error
        key = self._check_header(header, typ)
        try:
            token = jwt.decode(value, key, algorithms=[self._algorithm])
            self._claims_registry().validate(token.claims)
        except (JoseError, ValueError) as error:
            raise TokenError(f"rejected: {error}") from error
        return _verified(typ, token.claims)

    def _check_header(self, header: dict[str, object], typ: str) -> OctKey:
        if not set(header) <= ALLOWED_HEADER:
            raise TokenError(
                f"header parameters not allowed: {sorted(set(header) - ALLOWED_HEADER)}"
            )
        if header.get("alg") != self._algorithm:
            raise TokenError(f"algorithm {header.get('alg')!r} not allowed")
        if header.get("typ") != typ:
            raise TokenError(f"wrong token type {header.get('typ')!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._verifying_keys:
            raise TokenError("unknown key id")
        return self._verifying_keys[kid]

    def _claims_registry(self) -> JWTClaimsRegistry:
        required: ClaimsOption = {"essential": True}
        return JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            sub=required,
            sid=required,
            jti=required,
            iat=required,
            nbf=required,
            exp=required,
        )


def _verified(typ: str, claims: dict[str, object]) -> VerifiedToken:
    try:
        return VerifiedToken(
            typ=typ,
            user_id=uuid.UUID(str(claims["sub"])),
            session_id=uuid.UUID(str(claims["sid"])),
            token_id=str(claims["jti"]),
            not_before=int(str(claims["nbf"])),
            expires_at=int(str(claims["exp"])),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise TokenError(f"malformed claims: {error}") from error
