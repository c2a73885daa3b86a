"""The one verification path of every JWT of the service: shape, header, signature, claims.

Access and refresh tokens (``session``), device credentials (``device``) and ``mfa_token``s
(``mfa``) all go through ``verified_claims``, each with its own ``typ`` and claim rules.
Verification accepts only the configured algorithm (RFC 8725 section 3.1), only the configured
keys, picked by ``kid``, and no header that points at a key elsewhere (``jku``, ``x5u``,
``jwk``, ``x5c``) or demands an extension (``crit``). The keys themselves (which signs, which
only verify, what is published) are ``service.security.keys``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from service.security.keys import KeySet

#: Header parameters a token of ours may carry; anything else is refused.
ALLOWED_HEADER: Final = frozenset({"alg", "kid", "typ"})
#: Clock skew tolerated between instances for ``nbf``, ``iat`` and ``exp``.
LEEWAY_SECONDS: Final = 5
#: No token of ours comes near this; longer input is refused before any parsing.
MAX_TOKEN_LENGTH: Final = 4096


class TokenError(Exception):
    """The token cannot be trusted; the message says why (for logs, not for clients)."""


def verified_claims(
    value: str, keys: KeySet, typ: str, registry: JWTClaimsRegistry
) -> dict[str, Any]:
    """The claims of ``value`` once its shape, header (``alg``, ``typ``, ``kid``), signature and
    the ``registry``'s claim rules have all checked out; ``TokenError`` saying why otherwise.

    Every JWT of the service (access, refresh, device, mfa) is verified by this one path.
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
