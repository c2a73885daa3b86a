"""TOTP codes (RFC 6238) on ``pyotp``: new secrets, the enrolment URI and QR code, and the
check of a presented code that accepts each time step at most once.

A secret is 160 random bits in base32 (RFC 4226 section 4 asks for at least 128; 160 is the
SHA-1 block the authenticator apps expect). Codes are six digits of HMAC-SHA1 over 30-second
steps, the defaults every authenticator app implements. ``matching_step`` accepts the current
step and one step either side (RFC 6238 section 5.2 recommends at most one step of network
delay or clock drift) and only a step after the last one accepted for the account: a code,
once used, is refused for the rest of its validity (section 5.2, "the verifier MUST NOT accept
the second attempt of the same OTP"), and so is any older one.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pyotp

#: Seconds per time step (RFC 6238 section 4, X).
STEP_SECONDS: Final = 30
#: Steps either side of the current one that are accepted (clock drift, typing time).
VALID_WINDOW: Final = 1
DIGITS: Final = 6
#: Base32 characters of a new secret: 32 characters are 160 bits.
SECRET_LENGTH: Final = 32


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an authenticator app needs to add the account: the secret three ways."""

    secret: str
    uri: str
    qr_svg: str


class Totp:
    """TOTP for one service: its issuer name and the clock codes are checked against.

    ``clock`` is ``time.time`` in service; tests set another to drive the time steps.
    """

    def __init__(self, *, issuer: str, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.clock = clock

    def enrolment(self, account_name: str) -> Enrolment:
        """A new secret, its ``otpauth://`` URI and that URI as a QR code (an SVG data URI)."""
        secret = pyotp.random_base32(SECRET_LENGTH)
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
            name=account_name, issuer_name=self.issuer
        )
        return Enrolment(secret=secret, uri=uri, qr_svg=qr_svg_data_uri(uri))

    def current_step(self) -> int:
        return int(self.clock() // STEP_SECONDS)

    def matching_step(self, secret: str, code: str, *, after: int | None) -> int | None:
        """The time step whose code ``code`` is, if it is within ``VALID_WINDOW`` steps of now
        and later than step ``after`` (the last one accepted); else None.

        Every candidate is compared in constant time, and all of them always, so the answer
        takes as long whichever step matched or none.
        """
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        now = self.current_step()
        found: int | None = None
        for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
            if hmac.compare_digest(totp.generate_otp(step), code) and (
                after is None or step > after
            ):
                found = step
        return found


def qr_svg_data_uri(uri: str) -> str:
    """``uri`` as a QR code: an SVG image in a ``data:`` URI (RFC 2397), for an ``<img src>``."""
    # Imported here: only enrolment draws a QR code, and segno is 1 MiB of every worker's
    # memory otherwise (bench/memory_floor.py).
    import segno  # noqa: PLC0415

    return str(segno.make(uri, error="m").svg_data_uri(scale=4))
