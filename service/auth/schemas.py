"""Request and response models of the auth routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from service.auth.sessions import LogoutScope
from service.schemas import STORABLE, EmailAddress, SafeStr
from service.security.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    RULE_SENTENCES,
    password_problem,
)
from service.security.tokens.verification import MAX_TOKEN_LENGTH

USERNAME_CHARACTERS = "may contain only the characters _ . @ + - besides ASCII letters and digits"


def _username_rule_in_words(value: object, handler: ValidatorFunctionWrapHandler) -> str:
    """The pattern's failure as the rule in words: people read it (the API, the command line),
    a regular expression they would have to decode. The schema still documents the pattern."""
    try:
        username: str = handler(value)
    except ValidationError as error:
        if any(item["type"] == "string_pattern_mismatch" for item in error.errors()):
            raise PydanticCustomError("username_characters", USERNAME_CHARACTERS) from None
        raise
    return username


Username = Annotated[
    str,
    StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@+-]+$"),
    WrapValidator(_username_rule_in_words),
    STORABLE,
]
Password = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH),
    STORABLE,
]
PASSWORD_RULES = (
    f"{MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters, all of them significant; "
    "not the username and not one of the 20,000 most common passwords."
)


def acceptable_password(password: str, username: str | None = None) -> str:
    problem = password_problem(password, username)
    if problem is not None:
        # ``detail`` is the rule's own sentence: the answer's ``detail`` when it is all that
        # failed (``service/errors.py``, ``validation_failed``).
        raise PydanticCustomError("password_policy", problem, {"detail": RULE_SENTENCES[problem]})
    return password


class SignupRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    username: Username = Field(
        description="3-64 characters: ASCII letters, digits and `_ . @ + -`; unique ignoring case.",
        examples=["john"],
    )
    password: Password = Field(
        description=PASSWORD_RULES, examples=["correct horse battery staple"]
    )
    email: EmailAddress | None = Field(
        None,
        description="Optional. A verification link is mailed to it; only the account's owner "
        "sees it. Refused (422) when the service sends no email.",
    )

    @field_validator("password")
    @classmethod
    def _password_policy(cls, password: str, info: ValidationInfo) -> str:
        # ``username`` is declared first, so it is in ``info.data`` whenever it was valid.
        return acceptable_password(password, info.data.get("username"))


class UserOut(BaseModel):
    """An account, as its owner sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    created_at: datetime
    email: str | None = Field(None, description="The account's email address, if it has one.")
    email_verified: bool = Field(
        False, description="Whether the owner confirmed `email` with the link mailed to it."
    )


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


class RefreshRequest(BaseModel):
    """A refresh token to spend (RFC 6749 section 6), as JSON or form fields.

    Leave `refresh_token` out to spend the refresh cookie instead (cookie mode). The OAuth
    fields `scope`, `client_id` and `client_secret` that OAuth clients send are ignored; any
    other field is refused.
    """

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["refresh_token"] | None = Field(
        None, description="`refresh_token` if sent; another value is `unsupported_grant_type`."
    )
    refresh_token: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TOKEN_LENGTH,
        description="The refresh token to spend; without it, the `__Host-refresh_token` cookie.",
    )
    scope: str | None = Field(None, max_length=1024, description="Ignored (RFC 6749 section 6).")
    client_id: str | None = Field(
        None, max_length=256, description="Ignored: clients need no registration here."
    )
    client_secret: str | None = Field(
        None, max_length=256, description="Ignored: clients need no registration here."
    )


class RefreshGrant(BaseModel):
    """OAuth 2.0 refresh at the token endpoint (RFC 6749 section 6).

    `grant_type=refresh_token` with the `refresh_token`, as form fields or a JSON object.
    ``scope`` and client credentials are accepted and ignored.
    """

    model_config = ConfigDict(extra="ignore")

    grant_type: Literal["refresh_token"]
    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    scope: str | None = Field(None, description="Ignored.")


class CookieMode(BaseModel):
    """Where the refresh token goes."""

    cookie: bool = Field(
        False,
        description="`true`: set the refresh token as the `HttpOnly` cookie "
        "`__Host-refresh_token` instead of putting it in the body (for browsers; the request "
        "must send `X-Requested-With` and, if it has an `Origin`, an allowed one).",
    )


class AccessTokens(BaseModel):
    """Fresh tokens in cookie mode: the refresh token is in the `__Host-refresh_token` cookie.

    Responses carrying tokens are never cached.
    """

    model_config = ConfigDict(from_attributes=True)

    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the RFC 6750 scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")


class TokenPair(AccessTokens):
    """Fresh tokens (RFC 6749 section 5.1). Responses carrying them are never cached."""

    refresh_token: str = Field(
        description="Spend once at `POST /refresh` (or `/login` with "
        "`grant_type=refresh_token`) for a new pair."
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


class RefreshAnswer(RootModel[TokenPair | AccessTokens]):
    """A new pair, or in cookie mode the pair without the refresh token (it is in the cookie)."""


class PasswordChange(BaseModel):
    """The caller's current password and the one to replace it."""

    model_config = ConfigDict(extra="forbid")

    current_password: SafeStr = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: Password = Field(
        description=PASSWORD_RULES, examples=["correct horse battery staple"]
    )

    @field_validator("new_password")
    @classmethod
    def _password_policy(cls, password: str) -> str:
        # The username rule needs the account; ``users.change_password`` applies it.
        return acceptable_password(password)


class LogoutRequest(BaseModel):
    """What to log out of. Every field is optional; an empty body logs out the Bearer session.

    Sent as a JSON object or as form fields, like `POST /refresh`.
    """

    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_TOKEN_LENGTH,
        description="Names the session to log out of; else the Bearer access token does.",
    )
    scope: LogoutScope = Field(
        LogoutScope.LOCAL,
        description=(
            "`local` (default): this session; `others`: every other session of the user; "
            "`global`: all of them."
        ),
    )


class SessionOut(BaseModel):
    """A live login session of the caller."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime = Field(description="When the login happened.")
    last_used_at: datetime = Field(description="When a refresh token of it was last spent.")
    expires_at: datetime = Field(
        description="When it ends at the latest; refreshing never moves it."
    )
    user_agent: str | None = Field(description="`User-Agent` of the login request.")
    client_address: str | None = Field(description="Client address of the login request.")
    current: bool = Field(False, description="Whether the presented access token belongs to it.")


class SessionList(BaseModel):
    """The caller's live sessions, newest first."""

    sessions: list[SessionOut]


class PublicJwk(BaseModel):
    """A public verification key (RFC 7517 section 4).

    Only public members: a private one (``d``, ``p``, ``q``, ``dp``, ``dq``, ``qi``, ``k``)
    fails validation instead of being published.
    """

    model_config = ConfigDict(extra="forbid")

    kty: str = Field(description="Key type (RFC 7518 section 6.1).")
    kid: str = Field(description="Key id, the RFC 7638 thumbprint; a token's `kid` names it.")
    alg: Literal["RS256", "ES256", "Ed25519"] = Field(description="The only `alg` it verifies.")
    use: Literal["sig"] = Field(description="Always `sig`: it verifies signatures.")


class RsaPublicJwk(PublicJwk):
    """An RSA public key (RFC 7518 section 6.3.1)."""

    kty: Literal["RSA"]
    n: str = Field(description="Modulus, base64url.")
    e: str = Field(description="Exponent, base64url.")


class EcPublicJwk(PublicJwk):
    """An elliptic-curve public key on P-256 (RFC 7518 section 6.2.1)."""

    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str = Field(description="x coordinate, base64url.")
    y: str = Field(description="y coordinate, base64url.")


class OkpPublicJwk(PublicJwk):
    """An Ed25519 public key (RFC 8037 section 2)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")


class JwkSet(BaseModel):
    """The public keys that verify the service's tokens: a JWK Set (RFC 7517 section 5)."""

    keys: list[Annotated[RsaPublicJwk | EcPublicJwk | OkpPublicJwk, Field(discriminator="kty")]] = (
        Field(description="The signing key first, then older or upcoming ones; empty for HS256.")
    )
