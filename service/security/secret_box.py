"""Encryption at rest of the TOTP secrets: AES-256-GCM with a key from ``MFA_ENCRYPTION_KEY``.

A TOTP secret must be readable by the service (it computes the codes), so it cannot be hashed
like a password; it is encrypted, so that a copy of the database (a backup, a leaked dump, a
read-only SQL injection) holds no usable secret without the key, which lives in the
environment. AES-GCM (NIST SP 800-38D) authenticates what it
encrypts, and the user id is bound in as associated data: a ciphertext moved to another
account's row does not decrypt. Each value gets a fresh random 96-bit nonce.

The stored form is ``v1.`` and the base64url of nonce and ciphertext; the version prefix
leaves room for another scheme or key later.
"""

from __future__ import annotations

import base64
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
PREFIX: Final = "v1."


class SecretBoxError(Exception):
    """A stored value cannot be decrypted: another key, or a tampered or moved value."""


def decode_key(text: str) -> bytes:
    """The 32 key bytes of ``text`` (base64url, padding optional); ``ValueError`` otherwise."""
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError):
        raise ValueError("is not base64url") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"must be {KEY_BYTES} bytes in base64url, not {len(key)}")
    return key


def new_key() -> str:
    """A new random key in the form ``MFA_ENCRYPTION_KEY`` takes."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


class SecretBox:
    """Encrypts and decrypts short secrets, each bound to the id of its owner."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, owner: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), owner.encode("utf-8"))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, owner: str) -> str:
        if not stored.startswith(PREFIX):
            raise SecretBoxError("unknown format")
        try:
            raw = base64.urlsafe_b64decode(stored.removeprefix(PREFIX))
            opened = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise SecretBoxError("cannot decrypt: another key, or a changed value") from None
        return opened.decode("utf-8")
