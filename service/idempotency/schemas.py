"""The ``Idempotency-Key`` request header as the OpenAPI document describes it.

Only the creating POSTs that run in ``service.idempotency.guard.once`` (``/signup``,
``POST /items``) document it; the guard reads the header itself.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from service.schemas import no_null_default


def _idempotency_key_schema(schema: dict[str, Any]) -> None:
    no_null_default(schema)
    schema["pattern"] = "^[!#-~]([ -~]{0,253}[!-~])?$"


class IdempotencyHeader(BaseModel):
    """The ``Idempotency-Key`` request header of the creating POSTs; documented only.

    The pattern describes the bare form; the Structured Field string form (``"..."``, RFC 9651
    section 3.3.3) of the same characters is accepted too (``service.idempotency.guard``).
    """

    idempotency_key: str | SkipJsonSchema[None] = Field(
        None,
        description="A unique value (a UUID) per operation, reused by its retries: they get the "
        "first answer again (`Idempotent-Replayed: true`) and nothing is done twice. 1 to 255 "
        "printable ASCII characters; kept for `IDEMPOTENCY_KEY_TTL` seconds. The same key with "
        "another request is `422`.",
        json_schema_extra=_idempotency_key_schema,
    )
