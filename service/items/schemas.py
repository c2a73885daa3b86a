"""Request and response models of the items routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from service.schemas import STORABLE, no_null_default

Name = Annotated[str, StringConstraints(min_length=1, max_length=200), STORABLE]
Description = Annotated[str, StringConstraints(max_length=10_000), STORABLE]


class ItemCreate(BaseModel):
    """A new item."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Book"])
    description: Description | None = Field(None, examples=["A nice book"])


class ItemReplace(ItemCreate):
    """The whole item (PUT): an omitted description is cleared."""


class ItemPatch(BaseModel):
    """Any subset of the item's fields (PATCH); `description: null` clears it."""

    model_config = ConfigDict(extra="forbid")

    # Optional but never null: ``SkipJsonSchema`` keeps ``null`` out of the documented type.
    name: Name | SkipJsonSchema[None] = None
    description: Description | None = None

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null")
        return value

    def changes(self) -> dict[str, str | None]:
        """Only the fields the client sent."""
        return self.model_dump(include=self.model_fields_set)


class ItemOut(BaseModel):
    """An item. Ids are opaque strings to clients."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    """One page of the caller's items, newest first."""

    items: list[ItemOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class ItemListQuery(BaseModel):
    """Paging parameters."""

    limit: int = Field(20, ge=1, le=100, description="Items per page.")
    cursor: Annotated[str, StringConstraints(max_length=200), STORABLE] | None = Field(
        None, description="`next_cursor` of the previous page."
    )


class ReadConditions(BaseModel):
    """The conditional request header of a read (RFC 9110 section 13.1.2); documented only."""

    if_none_match: str | SkipJsonSchema[None] = Field(
        None,
        description="An `ETag` of the item (or `*`): `304 Not Modified` if it is current.",
        json_schema_extra=no_null_default,
    )


class WriteConditions(BaseModel):
    """The conditional request header of an update (RFC 9110 section 13.1.1); documented only."""

    if_match: str | SkipJsonSchema[None] = Field(
        None,
        description="`ETag`s of the item (or `*`): `412` unless one names the current version, "
        "so an update never overwrites a change it has not seen.",
        json_schema_extra=no_null_default,
    )
