"""Reading requests: strict body parsing for the blueprints, and the client's address.

``ApiRequest`` makes body errors precise: a JSON route given another content type is a 415
(Quart would hand the handler ``None``), and a body that is not UTF-8 JSON is a 400. So is JSON
that Python's parser refuses for its own limits rather than its syntax: nesting deeper than the
interpreter's recursion limit (``RecursionError``) and integers longer than
``sys.get_int_max_str_digits()`` (a ``ValueError``); no schema of ours nests that deep or takes
such a number, and these must never become a 500 with a traceback per request.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Request, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from service.errors import InvalidRequest

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class ApiRequest(Request):
    """Quart's request with JSON parsing that tells 400 from 415."""

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            if silent:
                return None
            raise UnsupportedMediaType()
        raw = await self.get_data(cache=cache, as_text=False)
        try:
            # The standard parser keeps "\ud800"-style escapes as lone surrogates, so the
            # schemas can refuse them field by field (422) instead of the whole body (400).
            return json.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            if silent:
                return None
            raise BadRequest() from None


def client_address() -> str | None:
    """The address of the client of the current request: the one place that reads it.

    Stored on login sessions and written on security events.
    """
    address: str | None = request.remote_addr
    return address


async def read_form_or_json() -> Any:
    """The body of a token endpoint: form fields (urlencoded or multipart) or parsed JSON.

    JSON that does not parse is ``invalid_request`` there (RFC 6749 section 5.2), so OAuth
    clients get the ``error`` code they look for.
    """
    if request.mimetype in FORM_TYPES:
        form = await request.form
        return {key: form[key] for key in form}
    try:
        return await request.get_json()
    except BadRequest:
        raise InvalidRequest("The request body is not valid JSON.") from None
