"""Response pieces shared by the blueprints: header sets and the hook every response passes."""

from __future__ import annotations

from quart import Response, current_app
from werkzeug.datastructures import Headers


def headers(**values: str) -> Headers:
    """Response headers for a ``(body, status, headers)`` return value.

    quart-schema runs a plain ``dict`` of headers through a fresh pydantic ``TypeAdapter`` on
    every response; a werkzeug ``Headers`` object it passes through untouched. Underscores in
    the keyword names become hyphens (``cache_control`` is ``Cache-Control``).
    """
    return Headers([(name.replace("_", "-"), value) for name, value in values.items()])


#: Responses that carry tokens must not be stored by any cache (RFC 6749 section 5.1).
NO_STORE = headers(Cache_Control="no-store", Pragma="no-cache")

#: A body this small fits in the socket's write buffer (asyncio's high-water mark is 64 KiB),
#: so Hypercorn takes it without waiting for the client to read.
BUFFERED_BODY_BYTES = 64 * 1024


#: Statuses that never carry a body (RFC 9110 sections 15.3.5 and 15.4.5).
BODILESS_STATUSES = frozenset({204, 304})


async def finish_response(response: Response) -> Response:
    """``after_request`` hook of every response: ``nosniff``, no ``Content-Type`` without a
    body, and a send timeout when large.

    Quart sends a response under ``asyncio.wait_for`` when it has a timeout, which costs a task
    per response. Only a large body such as the docs page's JavaScript can wait on a slow
    client, so only those get one: the app's ``RESPONSE_TIMEOUT`` (``Response.timeout``: None
    is no timeout).
    """
    response.headers["X-Content-Type-Options"] = "nosniff"
    if response.status_code in BODILESS_STATUSES:
        # Quart gives every response a media type, text/html by default; one without a body
        # has none to describe (RFC 9110 section 8.3).
        del response.headers["Content-Type"]
    length = response.content_length
    small = length is not None and length <= BUFFERED_BODY_BYTES
    response.timeout = None if small else current_app.config["RESPONSE_TIMEOUT"]
    return response
