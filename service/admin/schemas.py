"""Request and response models of the admin routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from service.schemas import STORABLE
from service.security.roles import Role


class UserListQuery(BaseModel):
    """Search and paging parameters."""

    q: Annotated[str, StringConstraints(min_length=1, max_length=64), STORABLE] | None = Field(
        None,
        description="Only accounts whose username or email address starts with this, in any "
        "letter case.",
    )
    limit: int = Field(20, ge=1, le=100, description="Accounts per page.")
    cursor: Annotated[str, StringConstraints(max_length=200), STORABLE] | None = Field(
        None, description="`next_cursor` of the previous page."
    )


class AdminUserOut(BaseModel):
    """An account as admins see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    email: str | None = Field(description="The account's address, if it has one.")
    email_verified: bool = Field(description="Whether the owner confirmed `email`.")
    role: Role = Field(description="`user` or `admin`.")
    is_active: bool = Field(description="False once disabled: no login, no session.")
    created_at: datetime


class AdminUserPage(BaseModel):
    """One page of accounts, newest first."""

    users: list[AdminUserOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class AdminUserPatch(BaseModel):
    """The changes to make: either or both fields; an omitted one stays as it is."""

    model_config = ConfigDict(extra="forbid")

    # Optional but never null: ``SkipJsonSchema`` keeps ``null`` out of the documented type.
    # Strict: JSON's true and false only, never "no" or 0 read as false.
    is_active: StrictBool | SkipJsonSchema[None] = Field(
        None, description="`false` disables the account and ends all its sessions."
    )
    role: Role | SkipJsonSchema[None] = Field(None, description="`user` or `admin`.")

    @field_validator("is_active", "role")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value


class AdminSessionOut(BaseModel):
    """A live login session of the account."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime = Field(description="When the login happened.")
    last_used_at: datetime = Field(description="When a refresh token of it was last spent.")
    expires_at: datetime = Field(description="When it ends at the latest.")
    user_agent: str | None = Field(description="`User-Agent` of the login request.")
    client_address: str | None = Field(description="Client address of the login request.")


class AdminSessionList(BaseModel):
    """The account's live sessions, newest first."""

    sessions: list[AdminSessionOut]
