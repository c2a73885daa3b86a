"""Keys made at test time and an independent JWS signer for building (and forging) tokens.

Nothing here uses the service's key code or joserfc: tokens are signed with ``cryptography``
directly and key ids are computed from RFC 7638 by hand, so a test proves the service agrees
with the standards, not with itself. No private key is ever committed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any, TypeAlias

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALGORITHMS = ("HS256", "RS256", "ES256", "Ed25519")
ASYMMETRIC = ("RS256", "ES256", "Ed25519")

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
#: An HS256 key is its secret text; the others are ``cryptography`` private keys.
SigningKey: TypeAlias = str | PrivateKey


def new_key(algorithm: str) -> SigningKey:
    """A fresh key for ``algorithm`` (RSA at the 2048-bit minimum, to keep the suite quick)."""
    if algorithm == "HS256":
        return secrets.token_urlsafe(48)
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(algorithm)


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_settings(
    algorithm: str, signing: SigningKey, verify_only: tuple[SigningKey, ...] = ()
) -> dict[str, Any]:
    """Settings keyword arguments that make ``signing`` sign and ``verify_only`` verify."""
    if algorithm == "HS256":
        assert isinstance(signing, str)
        return {"secret_key": signing, "secret_key_fallbacks": list(verify_only)}
    assert not isinstance(signing, str)
    values: dict[str, Any] = {"jwt_algorithm": algorithm, "jwt_private_key": private_pem(signing)}
    if verify_only:
        values["jwt_verify_keys"] = "".join(public_pem(key) for key in verify_only)  # type: ignore[arg-type]
    return values


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: SigningKey) -> dict[str, str]:
    """The required public members of ``key`` (RFC 7638 section 3.2), or ``k`` for a secret."""
    if isinstance(key, str):
        return {"k": b64url(key.encode()), "kty": "oct"}
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {
            "e": b64url(_int_bytes(numbers.e)),
            "kty": "RSA",
            "n": b64url(_int_bytes(numbers.n)),
        }
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(point.x.to_bytes(32, "big")),
            "y": b64url(point.y.to_bytes(32, "big")),
        }
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def thumbprint(key: SigningKey) -> str:
    """RFC 7638 section 3: SHA-256 of the required members, sorted, without whitespace."""
    canonical = json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def sign(header: dict[str, Any], claims: dict[str, Any], key: SigningKey | bytes, alg: str) -> str:
    """A compact JWS of ``claims`` under ``header``, signed as ``alg`` says (RFC 7515 section 7.1).

    ``key`` is the HMAC secret (text or bytes) for HS256, else a private key. ``alg`` may
    differ from ``header["alg"]``: that is how the algorithm-confusion tokens are made.
    """
    signing_input = f"{part(header)}.{part(claims)}".encode()
    return f"{signing_input.decode()}.{b64url(signature(signing_input, key, alg))}"


def part(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def signature(message: bytes, key: SigningKey | bytes, alg: str) -> bytes:
    if alg == "none":
        return b""
    if alg == "HS256":
        secret = key.encode() if isinstance(key, str) else key
        assert isinstance(secret, bytes)
        return hmac.new(secret, message, hashlib.sha256).digest()
    if alg == "RS256":
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 7518 section 3.4
    if alg == "Ed25519":
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        return key.sign(message)
    raise ValueError(alg)


def header_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(b64url_decode(token.partition(".")[0]))
    return decoded


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return decoded
