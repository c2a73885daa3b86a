"""Request and response models of the session routes: refresh, logout, ``/sessions``, and the
token answers that ``/login`` shares."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from service.security.tokens.verification import MAX_TOKEN_LENGTH
from service.sessions.rules import LogoutScope


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


class RefreshAnswer(RootModel[TokenPair | AccessTokens]):
    """A new pair, or in cookie mode the pair without the refresh token (it is in the cookie)."""


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
