"""Schema pieces shared by both blueprints: safe strings and the documented error body."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field


def _reject_unstorable(value: str) -> str:
    """Refuse text that a database would choke on: NUL bytes and lone surrogates.

    PostgreSQL rejects NUL in text and both engines reject unpaired UTF-16 surrogates (which
    JSON's ``\\ud800`` escapes can smuggle in); catching them here gives a 422, not a 500.
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


#: Put it last in an ``Annotated`` string type, after the ``StringConstraints``: placed before
#: them, pydantic reports lengths in "items" ("at least 3 items") instead of characters.
STORABLE = AfterValidator(_reject_unstorable)

SafeStr = Annotated[str, STORABLE]


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the failing field.")
    message: str


class Problem(BaseModel):
    """An error (RFC 9457 problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    error: str | None = Field(None, description="OAuth 2.0 error code, on auth failures.")
    errors: list[FieldError] | None = Field(None, description="Failing fields, on 422.")
