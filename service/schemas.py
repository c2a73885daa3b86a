"""Schema pieces shared by the blueprints: safe strings, the documented error body, and the
schema rule of optional headers (``no_null_default``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from service.security.email_addresses import (
    MAX_ADDRESS,
    InternationalLocalPart,
    InvalidAddress,
    canonical_email,
)


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


#: The NUL rule as the documented schema states it, so clients (and schemathesis) know it.
NO_NUL_PATTERN = "^[^\\u0000]*$"


@dataclass(frozen=True, slots=True)
class _Storable:
    """``_reject_unstorable`` after the string's own checks, documented as a ``pattern``.

    The check stays in Python (no regex runs on the request path); a string type that has a
    pattern of its own (usernames) keeps it, as that one already excludes NUL.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_reject_unstorable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", NO_NUL_PATTERN)
        return json_schema


#: Put it last in an ``Annotated`` string type, after the ``StringConstraints``: placed before
#: them, pydantic reports lengths in "items" ("at least 3 items") instead of characters.
STORABLE = _Storable()

SafeStr = Annotated[str, STORABLE]


def _canonical_email(value: str) -> str:
    """The address in its canonical form (``service.security.email_addresses``); a 422 that
    says why otherwise, naming no part of the value."""
    try:
        return canonical_email(value)
    except InternationalLocalPart as error:
        raise PydanticCustomError(
            "email_smtputf8",
            "only ASCII is accepted before the @ (no SMTPUTF8)",
            {"detail": str(error)},
        ) from None
    except InvalidAddress as error:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(error)}
        ) from None


#: An email address (syntax only, no DNS lookup), in its canonical form: the local part as
#: received and the domain as its lower-case IDNA A-label; compared ignoring ASCII case.
EmailAddress = Annotated[
    str,
    StringConstraints(max_length=MAX_ADDRESS),
    AfterValidator(_canonical_email),
    Field(
        description="An email address: ASCII before the @ (at most 64 characters), any domain "
        "(an internationalized one is stored as its `xn--` A-label); 254 characters at most. "
        "Compared ignoring the letter case of ASCII letters.",
        examples=["john@example.com"],
        json_schema_extra={"format": "email"},
    ),
]


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
    error_description: str | None = Field(
        None,
        pattern=r"^[\x20\x21\x23-\x5B\x5D-\x7E]+$",
        description="With `error`: the `detail` as RFC 6749 section 5.2 allows it "
        '(printable ASCII without `"` and `\\`).',
    )
    errors: list[FieldError] | None = Field(None, description="Failing fields, on 422.")


def no_null_default(schema: dict[str, Any]) -> None:
    """Leave ``default: null`` out of an optional header's schema: ``null`` is not a string, so
    ``{"type": "string", "default": null}`` is an invalid schema (OpenAPI 3.1, JSON Schema
    2020-12); an absent header is said by ``required: false``."""
    schema.pop("default", None)
