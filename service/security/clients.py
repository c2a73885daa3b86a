"""Client authentication of the introspection endpoint: HTTP Basic with a client id and secret.

RFC 7662 section 2.1 asks that callers of the introspection endpoint authenticate; they do so
as RFC 6749 section 2.3.1 describes: ``Authorization: Basic base64(id ":" secret)``, where id
and secret are each ``application/x-www-form-urlencoded`` first (so either may hold a colon).

Secrets are compared in constant time (``hmac.compare_digest``) over their SHA-256 digests, so
neither a secret's content nor its length shows in the time an answer takes, and an unknown
client id costs the same comparison as a known one. The secrets are long random strings
(``INTROSPECTION_CLIENTS`` refuses short or placeholder ones), so guessing one is hopeless.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

#: Longest ``Authorization`` header value parsed; ours are far shorter.
MAX_CREDENTIALS_LENGTH = 1024
#: Compared against when the client id is unknown, so that case takes as long as a wrong secret.
_NO_CLIENT = hashlib.sha256(b"no such client").digest()


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """A client id and secret as a caller presented them (not yet checked)."""

    client_id: str
    secret: str


def basic_credentials(authorization: str | None) -> ClientCredentials | None:
    """The credentials of an ``Authorization: Basic ...`` header, or None if it is not one.

    The scheme name is case-insensitive (RFC 9110 section 11.1); the payload must be base64 of
    UTF-8 text holding a colon (RFC 7617 section 2); id and secret are form-decoded
    (RFC 6749 section 2.3.1).
    """
    if not authorization or len(authorization) > MAX_CREDENTIALS_LENGTH:
        return None
    scheme, _, payload = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not payload.strip():
        return None
    try:
        decoded = base64.b64decode(payload.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        return None
    return ClientCredentials(unquote_plus(client_id), unquote_plus(secret))


class ClientRegistry:
    """The configured clients, by id, with the digests of their secrets."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._digests = {client_id: _digest(secret) for client_id, secret in secrets.items()}

    def __bool__(self) -> bool:
        return bool(self._digests)

    def authenticate(self, credentials: ClientCredentials | None) -> str | None:
        """The id of the client these credentials prove, or None."""
        if credentials is None:
            return None
        expected = self._digests.get(credentials.client_id, _NO_CLIENT)
        matches = hmac.compare_digest(expected, _digest(credentials.secret))
        return credentials.client_id if matches and expected is not _NO_CLIENT else None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
