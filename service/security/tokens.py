"""Access and refresh JWTs: issue them, and verify every part of one before trusting it.

A token is a JWS-signed JWT (RFC 7519) with header ``alg``, ``kid`` and ``typ`` and claims
``iss``, ``aud``, ``sub``, ``iat``, ``nbf``, ``exp``, ``jti`` and ``sid`` (the login session).
``typ`` separates the kinds: ``at+jwt`` for access tokens (RFC 9068 section 2.1) and
``refresh+jwt`` for refresh tokens, so one kind is never accepted as the other (RFC 8725
section 3.11). ``aud`` separates them too, for verifiers that never look at ``typ``: access
tokens carry ``JWT_AUDIENCE``, refresh tokens the token endpoint's URL
(``service.security.audiences``, which also says which older audience is still accepted). An
access token also says how its login authenticated, as ``amr`` (RFC 8176 method names:
``["pwd"]`` or ``["pwd", "otp"]``). Verification accepts only the configured algorithm (RFC
8725 section 3.1), only the configured keys, picked by ``kid``, and no header that points at a
key elsewhere (``jku``, ``x5u``, ``jwk``, ``x5c``) or demands an extension (``crit``). The keys
themselves (which signs, which only verify, what is published) are ``service.security.keys``.

Signing is deterministic for every supported algorithm: the same header and claims signed with
the same key give the same token, byte for byte. HS256 (HMAC), RS256 (RSASSA-PKCS1-v1_5) and
Ed25519 (RFC 8032 section 5.1.6) are deterministic by construction; ES256 is signed with the
deterministic ECDSA nonce of RFC 6979 (``DeterministicES256``), which any ES256 verifier
accepts. That lets a refresh rotation reproduce the successor it handed out moments ago
(``service.sessions.rotation``) from its stored ``jti`` and issue time, without a usable token ever
being stored.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwa import ESAlgorithm, JWSAlgModel
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from service.security import audiences
from service.security.keys import KeySet

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


class DeterministicES256(ESAlgorithm):
    """ES256 (ECDSA on P-256 with SHA-256, RFC 7518 section 3.4) with the RFC 6979 nonce.

    The nonce is derived from the key and the message instead of drawn at random, so one
    message always gets one signature, and a weak random number generator can never leak the
    key. Verifying is unchanged: a verifier cannot tell, and need not.
    """

    def __init__(self) -> None:
        super().__init__("ES256", "P-256", 256, recommended=True)

    def sign(self, msg: bytes, key: ECKey) -> bytes:
        der = key.get_op_key("sign").sign(msg, ECDSA(self.hash_alg(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        size = (key.curve_key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


class DeterministicRegistry(JWSRegistry):
    """joserfc's algorithms, with ES256 signed deterministically (``DeterministicES256``)."""

    def get_alg(self, name: str) -> JWSAlgModel:
        """The algorithm ``name`` as joserfc has it (and allows it), but ES256 deterministic."""
        algorithm = super().get_alg(name)
        return _DETERMINISTIC_ES256 if name == "ES256" else algorithm


_DETERMINISTIC_ES256: Final = DeterministicES256()


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


def verified_claims(
    value: str, keys: KeySet, typ: str, registry: JWTClaimsRegistry
) -> dict[str, Any]:
    """The claims of ``value`` once its shape, header (``alg``, ``typ``, ``kid``), signature and
    the ``registry``'s claim rules have all checked out; ``TokenError`` saying why otherwise.

    Every kind of token of the service (access, refresh, device) is verified by this one path.
    """
    check_shape(value)
    try:
        header = jws.extract_compact(value.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError) as error:
        raise TokenError(f"unreadable header: {error}") from error
    kid = check_header(header, algorithm=keys.algorithm, typ=typ)
    key = keys.verifying_key(kid)
    if key is None:
        raise TokenError("unknown key id (a retired or foreign key)")
    try:
        token = jwt.decode(value, key, algorithms=[keys.algorithm])
        registry.validate(token.claims)
    except (JoseError, ValueError) as error:
        raise TokenError(f"rejected: {error}") from error
    claims: dict[str, Any] = token.claims
    return claims


def check_shape(value: str) -> None:
    """Refuse anything but a compact JWS of sane size before parsing it (RFC 7515 section 7.1).

    Three dot-separated parts, so an unsecured JWT without a signature part or a JWE (five
    parts, RFC 7516 section 7.1) never reaches a parser; a length cap bounds the work an
    attacker can cause.
    """
    if len(value) > MAX_TOKEN_LENGTH:
        raise TokenError("token too long")
    if value.count(".") != 2:
        raise TokenError("not a compact JWS")


def check_header(header: Mapping[str, object], *, algorithm: str, typ: str) -> str:
    """The ``kid`` of an acceptable JOSE header; ``TokenError`` for any other header.

    - Only ``alg``, ``kid`` and ``typ`` are allowed. ``jku``, ``x5u``, ``jwk`` and ``x5c``
      name a key the sender chose, which proves nothing and invites SSRF (RFC 8725 section
      3.10); ``crit`` demands extensions we do not implement, so the JWS must be refused
      (RFC 7515 section 4.1.11).
    - ``alg`` must be the configured algorithm (RFC 8725 section 3.1). That refuses ``none``
      (section 2.1) and an HMAC made with a public key as its secret (section 2.1,
      algorithm confusion).
    - ``typ`` must be the expected kind (RFC 8725 sections 3.11 and 3.12, RFC 9068 section 4).
    - ``kid`` must be a string (RFC 7515 section 4.1.4); it is looked up among the configured
      keys only (RFC 7517 section 4.5), never used to fetch or build one.
    """
    extra = set(header) - ALLOWED_HEADER
    if extra:
        raise TokenError(f"header parameters not allowed: {sorted(extra)}")
    if header.get("alg") != algorithm:
        raise TokenError(f"algorithm {header.get('alg')!r} not allowed")
    if header.get("typ") != typ:
        raise TokenError(f"wrong token type {header.get('typ')!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("no key id")
    return kid


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
