"""One-time account tokens sent by email (verification, password reset): values and digests.

A token is 32 random bytes from the operating system's CSPRNG, sent URL-safe base64 (43
characters) and stored only as its SHA-256 digest. With 256 bits of entropy a fast hash is
enough: nobody can guess a value, so a stolen table gives no usable token and no salt or slow
hash is needed (OWASP ASVS 5.0, V6.4 and V7.2). The values are opaque, not JWTs, so the JWT
verifier of access and refresh tokens refuses them whatever they are presented as.

``password_binding`` ties a reset token to the password it may replace: any change of the
password hash, whatever made it, kills the tokens issued before. An ``mfa_token`` is bound the
same way, to the password and the second factor it was issued under
(``service.security.tokens.mfa``).
"""

from __future__ import annotations

import enum
import hashlib
import secrets

#: Random bytes of a token (256 bits).
TOKEN_BYTES = 32
#: A longer value than any token can be is refused before hashing.
MAX_ACCOUNT_TOKEN_LENGTH = 64


class Purpose(enum.StrEnum):
    """What a token lets its bearer do, once."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose name, not a password


def new_token() -> tuple[str, str]:
    """A fresh token: the value to send and the digest to store."""
    value = secrets.token_urlsafe(TOKEN_BYTES)
    return value, token_digest(value)


def token_digest(value: str) -> str:
    """The stored form of a token value: its SHA-256, hex."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def password_binding(password_hash: str, factor: str = "") -> str:
    """What a token remembers of the credentials it was issued under: a digest of the password
    hash, and of the second factor (its stored secret) when one is given.

    A reset token is bound to the password alone; an ``mfa_token`` to both, so a new password
    or a new factor (even one turned off and on again) kills it.
    """
    material = f"{password_hash}\n{factor}" if factor else password_hash
    return hashlib.sha256(material.encode()).hexdigest()
