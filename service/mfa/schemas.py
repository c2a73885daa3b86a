"""Request and response models of the TOTP second factor (enrolment, status, removal), and the
code fields that the login's second step (``service.login.schemas``) reuses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.schemas import STORABLE, SafeStr
from service.security import recovery_codes
from service.security.passwords import MAX_PASSWORD_LENGTH
from service.security.totp import DIGITS

TotpCode = Annotated[
    str,
    StringConstraints(pattern=rf"^[0-9]{{{DIGITS}}}$"),
    Field(description=f"The {DIGITS} digits the authenticator app shows now.", examples=["123456"]),
]
RecoveryCodeText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    STORABLE,
    Field(
        description="One of the recovery codes shown when the factor was turned on; each "
        "works once. Letter case, spaces and hyphens are ignored.",
        examples=["abcd-efgh-ijkl-mnop-qrst-uvwx"],
    ),
]
CurrentPassword = Annotated[SafeStr, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


def exactly_one(code: str | None, recovery_code: str | None) -> None:
    if (code is None) == (recovery_code is None):
        raise ValueError("send exactly one of code and recovery_code")


class TotpEnrolmentRequest(BaseModel):
    """The caller's password, asked again before a new authenticator is set up."""

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword


class TotpEnrolment(BaseModel):
    """A new TOTP secret for an authenticator app (RFC 6238: SHA-1, 6 digits, 30 seconds).

    Nothing is on yet: confirm with a first code at `POST /me/mfa/totp/confirm`.
    """

    otpauth_uri: str = Field(
        description="The `otpauth://totp/...` URI (Key Uri Format) with the secret and issuer."
    )
    secret: str = Field(description="The secret in base32, for typing into an app by hand.")
    qr_svg: str = Field(
        description="The URI as a QR code: an SVG image as a `data:image/svg+xml` URI, usable "
        "as an `<img src>` as it is."
    )


class TotpConfirmation(BaseModel):
    """The first code of the new authenticator, which turns the factor on."""

    model_config = ConfigDict(extra="forbid")

    code: TotpCode


class RecoveryCodes(BaseModel):
    """One-time recovery codes: shown this once (only their hashes are kept). Store them
    somewhere safe; each can replace one code from the app, once."""

    recovery_codes: list[str] = Field(
        min_length=recovery_codes.COUNT, max_length=recovery_codes.COUNT
    )


class TotpRemoval(BaseModel):
    """The password and a current code (or a recovery code), to turn the factor off."""

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword
    code: TotpCode | None = None
    recovery_code: RecoveryCodeText | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> Self:
        exactly_one(self.code, self.recovery_code)
        return self


class TotpStatus(BaseModel):
    """The caller's TOTP second factor."""

    enabled: bool = Field(description="Whether logins need a code.")
    pending: bool = Field(description="Whether an enrolment waits for its first code.")
    confirmed_at: datetime | None = Field(description="When the factor was turned on.")
    recovery_codes_left: int = Field(description="Unused recovery codes.")
