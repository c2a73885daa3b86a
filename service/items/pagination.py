"""Opaque keyset cursors for listing items newest first.

A cursor is the ``(created_at, id)`` of the last item of a page, base64url-encoded. The next
page is everything strictly older in that order, so items inserted meanwhile (which are newer)
never shift a page, and none is shown twice or skipped as offsets would.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from service.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), str(self.id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """Parse a cursor given back by a client; a 422 if it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            created_at, item_id = json.loads(raw)
            # Any JSON decodes: only two strings can be ours (a list id is an AttributeError
            # deep in uuid.UUID, an error of no documented kind).
            if not (isinstance(created_at, str) and isinstance(item_id, str)):
                raise ValueError("not two strings")
            moment = datetime.fromisoformat(created_at)
            if moment.tzinfo is None:
                raise ValueError("naive timestamp")
            # In UTC here, not at query time: an instant past year 9999 in UTC must be a 422.
            return cls(moment.astimezone(UTC), uuid.UUID(item_id))
        except (binascii.Error, ValueError, TypeError, OverflowError, RecursionError):
            raise _not_a_cursor() from None


def _not_a_cursor() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not valid.",
        errors=[{"field": "cursor", "message": "not a cursor returned by this API"}],
    )
