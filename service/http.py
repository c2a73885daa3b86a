"""HTTP edges shared by the blueprints: strict request body parsing and common headers.

``ApiRequest`` makes body errors precise: a JSON route given another content type is a 415
(Quart would hand the handler ``None``), and a body that is not UTF-8 JSON is a 400.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Request, Response, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from service.errors import InvalidRequest


def headers(**values: str) -> Headers:
    """Response headers for a ``(body, status, headers)`` return value.

    quart-schema runs a plain ``dict`` of headers through a fresh pydantic ``TypeAdapter`` on
    every response (~0.1 ms); a werkzeug ``Headers`` object it passes through untouched.
    Underscores in the keyword names become hyphens (``cache_control`` is ``Cache-Control``).
    """
    return Headers([(name.replace("_", "-"), value) for name, value in values.items()])


#: Responses that carry tokens must not be stored by any cache (RFC 6749 section 5.1).
NO_STORE = headers(Cache_Control="no-store", Pragma="no-cache")

#: A body this small fits in the socket's write buffer (asyncio's high-water mark is 64 KiB),
#: so Hypercorn takes it without waiting for the client to read.
BUFFERED_BODY_BYTES = 64 * 1024

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
        except (ValueError, UnicodeDecodeError):
            if silent:
                return None
            raise BadRequest() from None


async def finish_response(response: Response) -> Response:
    """``after_request`` hook of every response: ``nosniff``, and no send timeout when small.

    Quart sends each response under ``asyncio.wait_for`` (``RESPONSE_TIMEOUT``), which costs a
    task per response (~20 µs of a ~350 µs request). Only a large body such as the docs page's
    JavaScript can wait on a slow client, so only those keep the timeout.
    """
    response.headers["X-Content-Type-Options"] = "nosniff"
    length = response.content_length
    if length is not None and length <= BUFFERED_BODY_BYTES:
        response.timeout = None
    return response


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


def etag(version: int) -> str:
    """The strong entity tag of a resource version."""
    return f'"{version}"'


def if_none_match(version: int) -> bool:
    """Whether ``If-None-Match`` names this version or ``*`` (weak comparison, RFC 9110 13.1.2)."""
    if "If-None-Match" not in request.headers:  # most requests: skip parsing an empty header
        return False
    return request.if_none_match.contains_weak(str(version))


def if_match_versions(header: str | None) -> list[int] | None:
    """The versions an ``If-Match`` header accepts (RFC 9110 section 13.1.1).

    None means no precondition (no header, or ``*``, which any existing resource meets).
    Weak tags never match: ``If-Match`` uses the strong comparison.
    """
    if header is None or header.strip() == "*":
        return None
    versions = []
    for raw_tag in header.split(","):
        tag = raw_tag.strip()
        if tag.startswith('"') and tag.endswith('"') and tag[1:-1].isdigit():
            versions.append(int(tag[1:-1]))
    return versions
