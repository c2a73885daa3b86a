"""Request and response models of the auth routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.schemas import SafeStr
from service.security.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from service.security.tokens import MAX_TOKEN_LENGTH

Username = Annotated[
    SafeStr, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@+-]+$")
]
Password = Annotated[
    SafeStr, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
]


class SignupRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    username: Username = Field(
        description="3-64 characters: ASCII letters, digits and `_ . @ + -`; unique ignoring case.",
        examples=["john"],
    )
    password: Password = Field(
        description=(
            f"{MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters, all of them significant."
        ),
        examples=["correct horse battery staple"],
    )


class UserOut(BaseModel):
    """An account."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    created_at: datetime


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


class RefreshRequest(BaseModel):
    """A refresh token to spend."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class TokenPair(BaseModel):
    """Fresh tokens (RFC 6749 section 5.1). Responses carrying them are never cached."""

    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    refresh_token: str = Field(description="Spend once at `POST /refresh` for a new pair.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the RFC 6750 scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")
