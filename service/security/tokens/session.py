"""Access and refresh JWTs (the session tokens): issue them, and verify one before trusting it.

A token is a JWS-signed JWT (RFC 7519) with header ``alg``, ``kid`` and ``typ`` and claims
``iss``, ``aud``, ``sub``, ``iat``, ``nbf``, ``exp``, ``jti`` and ``sid`` (the login session).
``typ`` separates the kinds: ``at+jwt`` for access tokens (RFC 9068 section 2.1) and
``refresh+jwt`` for refresh tokens, so one kind is never accepted as the other (RFC 8725
section 3.11). ``aud`` separates them too, for verifiers that never look at ``typ``: access
tokens carry ``JWT_AUDIENCE``, refresh tokens the token endpoint's URL (``audiences``, which
also says which older audience is still accepted). An access token also says how its login
authenticated, as ``amr`` (RFC 8176 method names: ``["pwd"]`` or ``["pwd", "otp"]``). Header,
signature and claims are checked by the one verification path of every token
(``verification``); signing is deterministic (``signing``), so a refresh rotation can hand out
the same successor again.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from joserfc import jwt
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from service.security.keys import KeySet
from service.security.tokens import audiences
from service.security.tokens.signing import DeterministicRegistry
from service.security.tokens.verification import LEEWAY_SECONDS, TokenError, verified_claims

ACCESS_TYP: Final = "at+jwt"
REFRESH_TYP: Final = "refresh+jwt"
#: How many verified tokens are remembered (a few hundred KiB at most).
VERIFIED_CACHE_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The claims of a token whose signature, header and claims all checked out."""

    typ: str
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    not_before: int
    expires_at: int
    issued_at: int

    def in_lifetime(self, now: float) -> bool:
        """Whether ``now`` lies between ``nbf`` and ``exp``, give or take the leeway."""
        return self.not_before - LEEWAY_SECONDS <= now <= self.expires_at + LEEWAY_SECONDS


@dataclass(frozen=True, slots=True)
class IssuedToken:
    value: str
    token_id: str
    issued_at: int
    expires_at: int


class TokenService:
    """Signs tokens with the key set's signing key and verifies them with any of its keys."""

    def __init__(
        self,
        *,
        keys: KeySet,
        issuer: str,
        audience: str,
        refresh_audience: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Access tokens carry ``audience``; refresh tokens ``refresh_audience``, by default
        the token endpoint's audience derived from ``issuer`` alone. ``ValueError`` if the two
        are the same."""
        if refresh_audience is None:
            refresh_audience = audiences.token_endpoint_audience(None, issuer)
        audiences.check_distinct(refresh_audience, audience)
        self.keys = keys
        self._issuer = issuer
        self._audiences = {ACCESS_TYP: audience, REFRESH_TYP: refresh_audience}
        self._clock = clock
        accepted = {
            ACCESS_TYP: (audience,),
            REFRESH_TYP: (refresh_audience, *audiences.legacy_audiences(audience)),
        }
        self._claims = {
            typ: claims_registry(issuer, values, now=lambda: int(clock()))
            for typ, values in accepted.items()
        }
        self._verified: dict[str, VerifiedToken] = {}
        self._registry = DeterministicRegistry(algorithms=[keys.algorithm])

    def issue(
        self,
        typ: str,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        ttl: int,
        not_after: int,
        role: str | None = None,
        amr: Sequence[str] = (),
        token_id: str | None = None,
        issued_at: int | None = None,
    ) -> IssuedToken:
        """Sign a token of kind ``typ``; it expires after ``ttl`` seconds or at ``not_after``.

        ``role`` becomes the ``role`` claim, for other services to read; this service never
        trusts it and asks the database instead (``service.security.roles``). ``amr``, if
        given, becomes the claim of that name (RFC 8176 section 1).

        A new token gets a random ``jti`` and is issued now. Given the ``token_id`` and
        ``issued_at`` of a token issued before (with the same claims, ``ttl`` and
        ``not_after``), it is that token again, byte for byte, as long as the same key signs.
        """
        now = int(self._clock()) if issued_at is None else issued_at
        token_id = secrets.token_urlsafe(16) if token_id is None else token_id
        expires_at = min(now + ttl, not_after)
        header = {"alg": self.keys.algorithm, "kid": self.keys.signing_kid, "typ": typ}
        claims: dict[str, object] = {
            "iss": self._issuer,
            "aud": self._audiences[typ],
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": token_id,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
        }
        if role is not None:
            claims["role"] = role
        if amr:
            claims["amr"] = list(amr)
        value = jwt.encode(header, claims, self.keys.signing_key, registry=self._registry)
        return IssuedToken(value=value, token_id=token_id, issued_at=now, expires_at=expires_at)

    def verify(self, value: str, typ: str) -> VerifiedToken:
        """Check header, signature and claims of ``value`` as a token of kind ``typ``.

        A client sends the same access token with every request until it expires, so tokens
        that passed are remembered by their exact text: a hit skips the signature and claim
        checks but still checks the kind and the lifetime. Memory stays bounded by
        ``VERIFIED_CACHE_SIZE``; the oldest entry goes first.
        """
        now = self._clock()
        remembered = self._verified.get(value)
        if remembered is not None and remembered.typ == typ and remembered.in_lifetime(now):
            return remembered
        verified = self._verify(value, typ)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[value] = verified
        return verified

    def _verify(self, value: str, typ: str) -> VerifiedToken:
        registry = self._claims.get(typ)
        if registry is None:
            raise TokenError(f"not a kind of session token: {typ!r}")
        return _verified(typ, verified_claims(value, self.keys, typ, registry))


def claims_registry(
    issuer: str, accepted_audiences: Sequence[str], now: Callable[[], int]
) -> JWTClaimsRegistry:
    """The claim rules: all of ``iss aud sub sid jti iat nbf exp`` present, ours, and current.

    ``iss`` must be this service's and ``aud`` one of ``accepted_audiences`` (RFC 7519 sections
    4.1.1 and 4.1.3, RFC 9068 section 4); ``exp`` must be in the future and ``nbf``/``iat`` not
    in it, give or take ``LEEWAY_SECONDS`` of clock skew (RFC 7519 sections 4.1.4 to 4.1.6).
    """
    required: ClaimsOption = {"essential": True}
    return JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "values": list(accepted_audiences)},
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
            issued_at=int(str(claims["iat"])),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise TokenError(f"malformed claims: {error}") from error
