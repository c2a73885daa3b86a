"""Device credentials: proof that a client has logged in to an account before.

OWASP's "Slow down online guessing attacks with device cookies" design: every successful
login hands the client a signed credential naming the account, and later password checks that
present it are limited per credential instead of by the username-wide counter, so strangers
who fail for a username cannot lock its owner out (``service.limits``).

A credential is a JWS-signed JWT like the session tokens, signed and verified with the same
key set (so it survives key rotation the way they do), with its own ``typ`` ``device+jwt``:
it is never accepted as an access or refresh token, nor one of those as a credential (RFC 8725
section 3.11), and it carries no ``sid``, which every session token must. Its claims are
``iss``, ``aud`` (the token endpoint's URL, never the access tokens' audience, so a verifier
that ignores ``typ`` refuses it too: ``service.security.tokens.audiences``), ``sub`` (the user id),
``jti`` (a random nonce: the device's id, on which its failures are counted), ``iat``, ``nbf``
and ``exp`` (``DEVICE_TOKEN_TTL`` after the login).
It proves nothing but an earlier login: it never replaces a password.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from service.security.keys import KeySet
from service.security.tokens.user import UserTokens, subject

DEVICE_TYP: Final = "device+jwt"


@dataclass(frozen=True, slots=True)
class IssuedDevice:
    """A fresh device credential: its text, its id and when it expires (Unix time)."""

    value: str
    device_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class VerifiedDevice:
    """The claims of a device credential whose signature, header and claims checked out."""

    user_id: uuid.UUID
    device_id: str


class DeviceCredentials:
    """Issues device credentials for a user and verifies presented ones."""

    def __init__(
        self,
        *,
        keys: KeySet,
        issuer: str,
        audience: str,
        ttl: int,
        legacy_audiences: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Credentials carry ``audience``; verification accepts it and ``legacy_audiences``
        (``service.security.tokens.audiences``)."""
        self._tokens = UserTokens(
            DEVICE_TYP,
            keys=keys,
            issuer=issuer,
            audience=audience,
            ttl=ttl,
            legacy_audiences=legacy_audiences,
            clock=clock,
        )

    def issue(self, user_id: uuid.UUID) -> IssuedDevice:
        """A new credential for ``user_id``, with a new device id."""
        issued = self._tokens.issue(user_id)
        return IssuedDevice(
            value=issued.value, device_id=issued.token_id, expires_at=issued.expires_at
        )

    def verify(self, value: str) -> VerifiedDevice:
        """The claims of ``value``; ``TokenError`` (saying why) unless every check passes."""
        user_id, device_id = subject(self._tokens.verify(value))
        return VerifiedDevice(user_id=user_id, device_id=device_id)
