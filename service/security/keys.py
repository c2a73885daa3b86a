"""Token keys: load them from PEM, check each fits the algorithm, and publish the public ones.

One algorithm is configured (``JWT_ALGORITHM``). Its keys form a ``KeySet``: the newest key
signs, and every configured key verifies, so a key can be replaced without ending anybody's
session. Each key is named by its RFC 7638 thumbprint (``kid``), which every
token carries in its header; verification looks the key up by that name only.

- HS256: the signing key is ``SECRET_KEY``; ``SECRET_KEY_FALLBACKS`` only verify. Nothing is
  published: an HMAC key is a secret (RFC 7517 section 9.2).
- RS256, ES256, Ed25519: the signing key is the PEM private key in ``JWT_PRIVATE_KEY`` (or the
  file ``JWT_PRIVATE_KEY_FILE``); PEM keys in ``JWT_VERIFY_KEYS`` (or ``JWT_VERIFY_KEYS_FILE``)
  only verify. Of a verify-only key just the public half is kept, even if a private one is
  given. The public keys are published as a JWK Set (RFC 7517 section 5).

``EdDSA`` is accepted as the configured name of Ed25519, but tokens carry the fully specified
``alg`` value ``Ed25519`` (RFC 9864 section 2, which deprecates ``EdDSA`` in JWS).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final, Literal, TypeAlias, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

#: The JWS ``alg`` values this service signs with (RFC 7518 section 3.1, RFC 9864 section 2).
Algorithm: TypeAlias = Literal["HS256", "RS256", "ES256", "Ed25519"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = get_args(Algorithm)
AsymmetricAlgorithm: TypeAlias = Literal["RS256", "ES256", "Ed25519"]
#: Older names still accepted in configuration, and the algorithm each means (RFC 9864 section 2).
ALGORITHM_ALIASES: Final[Mapping[str, Algorithm]] = {"EdDSA": "Ed25519"}

#: RFC 7518 section 3.3: "A key of size 2048 bits or larger MUST be used" with RS256.
MIN_RSA_BITS: Final = 2048
#: What ``service keygen`` makes: 3072 bits is NIST's 128-bit security level.
GENERATED_RSA_BITS: Final = 3072

#: JWK members that hold private key material (RFC 7518 sections 6.2.2, 6.3.2 and 6.4.1,
#: RFC 8037 section 2). None of them may ever appear in a published key.
PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
JoseKey: TypeAlias = OctKey | RSAKey | ECKey | OKPKey

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


class KeyConfigError(ValueError):
    """A configured key cannot be used; the message says why and never shows key material."""


def canonical_algorithm(name: str) -> Algorithm:
    """The ``alg`` value for a configured algorithm name.

    ``EdDSA`` (RFC 8037 section 3.1) named a signature whose curve the key decides; RFC 9864
    section 2 replaces it for Ed25519 keys with the fully specified ``Ed25519``, which is what
    tokens carry. Names are case-sensitive, as JOSE ``alg`` values are (RFC 7515 section 4.1.1).
    """
    name = ALGORITHM_ALIASES.get(name, name)
    for algorithm in ALGORITHMS:
        if name == algorithm:
            return algorithm
    allowed = ", ".join([*ALGORITHMS, *ALGORITHM_ALIASES])
    raise KeyConfigError(f"unknown algorithm {name!r}; use one of {allowed}")


def describe_key(key: object) -> str:
    """A short description of a key for error messages (type and size, never material)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"a {key.key_size}-bit RSA key"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an EC key on the curve {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "an Ed448 key"
    return f"a {type(key).__name__.removeprefix('_')} key"


def key_problem(key: object, algorithm: AsymmetricAlgorithm) -> str | None:
    """Why ``key`` cannot sign or verify ``algorithm`` tokens, or None if it fits.

    RFC 8725 section 3.1: each key is used with exactly one algorithm, checked up front.
    RS256 wants an RSA key of at least 2048 bits (RFC 7518 section 3.3); ES256 is ECDSA on
    P-256 only (RFC 7518 section 3.4, the curve is part of the algorithm); Ed25519 wants an
    Ed25519 key (RFC 9864 section 2).
    """
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            return f"RS256 needs an RSA key, not {describe_key(key)}"
        if key.key_size < MIN_RSA_BITS:
            return f"RS256 needs an RSA key of at least {MIN_RSA_BITS} bits, not {key.key_size}"
        return None
    if algorithm == "ES256":
        on_p256 = isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and (
            isinstance(key.curve, ec.SECP256R1)
        )
        return None if on_p256 else f"ES256 needs an EC key on P-256, not {describe_key(key)}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return None
    return f"Ed25519 needs an Ed25519 key, not {describe_key(key)}"


def pem_blocks(text: str) -> list[str]:
    """The PEM blocks (RFC 7468) in ``text``, in order.

    Some platforms keep a multi-line environment variable as one line with literal ``\\n``
    sequences; those are read as the line breaks they stand for.
    """
    if "\n" not in text.strip() and "\\n" in text:
        text = text.replace("\\n", "\n")
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(text)]
    leftover = _PEM_BLOCK.sub("", text).strip()
    if leftover:
        raise KeyConfigError("text outside the PEM blocks (-----BEGIN ...-----)")
    return blocks


def load_private_key(block: str, algorithm: AsymmetricAlgorithm) -> PrivateKey:
    """The private key of one unencrypted PEM block, checked to fit ``algorithm``."""
    data = block.encode("ascii", "replace")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyConfigError(
            "the private key is encrypted; give it unencrypted "
            "(and keep it in a secret store or a file only the service can read)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        if _public_key_or_none(data) is not None:
            raise KeyConfigError("this is a public key; the signing key must be private") from None
        raise KeyConfigError("not a readable PEM private key") from None
    _check_fits(key, algorithm)
    if not isinstance(key, _PRIVATE_KEY_TYPES):  # pragma: no cover - _check_fits narrowed it
        raise KeyConfigError(f"unsupported: {describe_key(key)}")
    return key


def load_public_key(block: str, algorithm: AsymmetricAlgorithm) -> PublicKey:
    """The public key of a PEM block: a public key, or the public half of a private key."""
    key = _public_key_or_none(block.encode("ascii", "replace"))
    if key is None:
        return load_private_key(block, algorithm).public_key()
    _check_fits(key, algorithm)
    if not isinstance(key, _PUBLIC_KEY_TYPES):  # pragma: no cover - _check_fits narrowed it
        raise KeyConfigError(f"unsupported: {describe_key(key)}")
    return key


_PRIVATE_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
_PUBLIC_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)


def _public_key_or_none(data: bytes) -> object | None:
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return None


def _check_fits(key: object, algorithm: AsymmetricAlgorithm) -> None:
    problem = key_problem(key, algorithm)
    if problem is not None:
        raise KeyConfigError(problem)


@dataclass(frozen=True)
class KeySet:
    """The keys of the configured algorithm: the first signs, all of them verify.

    ``verifying_keys`` maps each ``kid`` to its key, the signing key first. Build one with
    ``hmac_key_set`` or ``asymmetric_key_set``.
    """

    algorithm: Algorithm
    signing_key: JoseKey
    verifying_keys: Mapping[str, JoseKey]
    _jwks: dict[str, list[dict[str, str]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        published = [
            public_jwk(key, kid, self.algorithm)
            for kid, key in self.verifying_keys.items()
            if not isinstance(key, OctKey)
        ]
        object.__setattr__(self, "_jwks", {"keys": published})

    @cached_property
    def signing_kid(self) -> str:
        """The ``kid`` every newly issued token carries."""
        return self.signing_key.thumbprint()

    def verifying_key(self, kid: str) -> JoseKey | None:
        """The configured key named ``kid``, or None: never a key the token brings along."""
        return self.verifying_keys.get(kid)

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public verification keys as a JWK Set (RFC 7517 section 5); none for HS256."""
        return {"keys": [dict(jwk) for jwk in self._jwks["keys"]]}


def hmac_key_set(secret: str, fallbacks: Sequence[str] = ()) -> KeySet:
    """HS256 keys: ``secret`` signs; ``fallbacks`` (older or upcoming secrets) only verify."""
    keys = [_oct_key(secret), *(_oct_key(fallback) for fallback in fallbacks)]
    return KeySet("HS256", keys[0], _by_kid(keys))


def asymmetric_key_set(
    algorithm: AsymmetricAlgorithm, signing: PrivateKey, verify_only: Sequence[PublicKey] = ()
) -> KeySet:
    """RS256/ES256/Ed25519 keys: ``signing`` signs; it and ``verify_only`` verify."""
    for key in [signing, *verify_only]:
        _check_fits(key, algorithm)
    signing_key = _jose_key(signing)
    keys = [_jose_key(signing.public_key()), *(_jose_key(key) for key in verify_only)]
    return KeySet(algorithm, signing_key, _by_kid(keys))


def _oct_key(secret: str) -> OctKey:
    if not secret:
        raise KeyConfigError("an HMAC secret must not be empty")
    return OctKey.import_key(secret)


def _jose_key(key: PrivateKey | PublicKey) -> JoseKey:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSAKey.import_key(key)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECKey.import_key(key)
    return OKPKey.import_key(key)


def _by_kid(keys: Sequence[JoseKey]) -> dict[str, JoseKey]:
    """Keys by RFC 7638 thumbprint, first occurrence first; a key listed twice counts once."""
    named: dict[str, JoseKey] = {}
    for key in keys:
        named.setdefault(key.thumbprint(), key)
    return named


def public_jwk(key: JoseKey, kid: str, algorithm: Algorithm) -> dict[str, str]:
    """The public JWK of ``key`` with ``kid``, ``alg`` and ``use: sig`` (RFC 7517 section 4).

    Only the public members are exported; a private one showing up would be a bug, so it stops
    the export instead of leaking (RFC 7517 section 9.2).
    """
    if isinstance(key, OctKey):
        raise KeyConfigError("an HMAC key is a secret and is never published")
    members = {name: str(value) for name, value in key.as_dict(private=False).items()}
    leaked = PRIVATE_JWK_MEMBERS & members.keys()
    if leaked:  # pragma: no cover - joserfc strips them; this guards against a regression
        raise KeyConfigError(f"private members {sorted(leaked)} in a public key")
    return {**members, "kid": kid, "alg": algorithm, "use": "sig"}


def generate_private_key(algorithm: AsymmetricAlgorithm) -> PrivateKey:
    """A new signing key for ``algorithm`` (RSA keys get ``GENERATED_RSA_BITS`` bits)."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_RSA_BITS)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: PrivateKey) -> str:
    """``key`` as an unencrypted PKCS #8 PEM block, the form ``JWT_PRIVATE_KEY`` takes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def key_id(key: PrivateKey | PublicKey) -> str:
    """The ``kid`` of ``key``: its RFC 7638 thumbprint (SHA-256 of the required public members)."""
    return _jose_key(key).thumbprint()
