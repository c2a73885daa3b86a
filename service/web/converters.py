"""URL converters of the app's routes.

``<id:...>`` is the path segment of a resource id (items, sessions): a UUID to the handler,
``format: uuid`` in the OpenAPI document. A segment that is not a UUID still matches, as the
nil UUID, which names no row (the service makes random, version 4 ids), so a malformed id gets
exactly the answer of a missing one: the handler's own 404 (``No such item.``), after the
bearer check, instead of the router's generic 404. Ids are opaque to clients; whether a
string is well formed is not theirs to learn from a different error.
"""

from __future__ import annotations

import re
import uuid

from werkzeug.routing import UUIDConverter

#: The id of no resource: what a malformed id segment becomes.
NO_SUCH_ID = uuid.UUID(int=0)


class OpaqueIdConverter(UUIDConverter):
    """Any one path segment; a canonical UUID as itself, anything else as ``NO_SUCH_ID``."""

    regex = r"[^/]+"
    _canonical = re.compile(UUIDConverter.regex)

    def to_python(self, value: str) -> uuid.UUID:
        if self._canonical.fullmatch(value) is None:
            return NO_SUCH_ID
        return uuid.UUID(value)
