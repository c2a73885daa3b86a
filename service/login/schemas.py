"""Request and response models of ``/login`` and ``/login/mfa``: the password grant, the second
step, and their answers (tokens and a device credential, or an ``mfa_token``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from service.mfa.schemas import RecoveryCodeText, TotpCode, exactly_one
from service.schemas import SafeStr
from service.security.passwords import MAX_PASSWORD_LENGTH
from service.security.tokens.verification import MAX_TOKEN_LENGTH
from service.sessions.schemas import AccessTokens, TokenPair


class PasswordGrant(BaseModel):
    """OAuth 2.0 resource owner password credentials (RFC 6749 section 4.3.2).

    Sent as form fields (urlencoded or multipart) or as a JSON object. ``scope`` and client
    credentials are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore")

    grant_type: Literal["password"] | None = Field(None, description="`password` if sent.")
    username: SafeStr = Field(max_length=256)
    password: SafeStr = Field(max_length=MAX_PASSWORD_LENGTH)
    scope: str | None = Field(None, description="Ignored.")
    device_token: str | None = Field(
        None,
        max_length=MAX_TOKEN_LENGTH,
        description="The `device_token` of an earlier login to this account, for clients "
        "without cookies (browsers send the device cookie instead). Failed attempts with it "
        "are limited per device, not by the username-wide limit; an invalid, expired or "
        "other account's one counts as none.",
    )


DEVICE_CREDENTIAL_TEXT = (
    "Proof that this client has logged in to this account: send it as `device_token` with "
    "later logins (browsers get it as the device cookie too), so that strangers failing for "
    "this username cannot lock this client out. Expires after `DEVICE_TOKEN_TTL`."
)


class LoginTokens(TokenPair):
    """Fresh tokens of a new session, and a new device credential."""

    device_token: str = Field(description=DEVICE_CREDENTIAL_TEXT)


class CookieLoginTokens(AccessTokens):
    """Fresh tokens of a new session in cookie mode, and a new device credential."""

    device_token: str = Field(description=DEVICE_CREDENTIAL_TEXT)


class MfaLoginRequest(BaseModel):
    """The second step of a login: the `mfa_token` of `/login` and a code or a recovery code.

    Sent as a JSON object or as form fields, like `/login`.
    """

    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    code: TotpCode | None = None
    recovery_code: RecoveryCodeText | None = None
    device_token: str | None = Field(
        None,
        max_length=MAX_TOKEN_LENGTH,
        deprecated=True,
        description="Accepted so that clients may send it as at `/login`, and ignored: wrong "
        "codes are limited per account whatever device credential comes with them.",
    )

    @model_validator(mode="after")
    def _one_proof(self) -> Self:
        exactly_one(self.code, self.recovery_code)
        return self


class MfaChallenge(BaseModel):
    """The password was right and the account has a second factor: finish the login at
    `POST /login/mfa` with this `mfa_token` and a code."""

    mfa_required: Literal[True] = True
    mfa_token: str = Field(description="Single use, for `POST /login/mfa` only.")
    expires_in: int = Field(description="Seconds until the `mfa_token` expires.")


class LoginAnswer(
    RootModel[LoginTokens | CookieLoginTokens | TokenPair | AccessTokens | MfaChallenge]
):
    """A password login's tokens and device credential, or a refresh grant's pair; in cookie
    mode without the refresh token (it is in the cookie); or, for an account with a second
    factor on, an `mfa_token` for the second step."""
