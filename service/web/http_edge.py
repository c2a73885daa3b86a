"""The HTTP edge: what Hypercorn 0.18.0 (with h11 0.16.0) cannot be configured to do, as ASGI.

Checked against exactly those versions (``CHECKED_AGAINST``; ``tests/test_http_edge.py`` fails
when either changes, so the rules below are looked at again). Each rule answers before the app
sees the request, with a problem+json body (RFC 9457) and ``Connection: close``:

- **Content-Length with Transfer-Encoding** is 400 (RFC 9112 section 6.1: "a server MAY reject
  a request that contains both ... and ought to handle such a message as an error ... and close
  the connection"); h11 reads such a request as chunked, while a proxy in front may have read
  it by its length: the shape of request smuggling.
- **A header block over** ``MAX_HEADER_BYTES`` is 431 (RFC 6585 section 5). Hypercorn's
  ``h11_max_incomplete_size`` (the same 16 KiB, ``config/hypercorn.toml``) only bounds a block
  that arrives in pieces; one that arrives in a single read (up to 64 KiB) is parsed whole.
- **HTTP/2 without TLS** (prior knowledge, or ``Upgrade: h2c``, which Hypercorn always accepts)
  is 505 unless ``HTTP2_CLEARTEXT`` is on: only HTTP/1.1 is documented and served behind the
  router, and RFC 9113 section 3.1 deprecates the upgrade. An ``Upgrade: h2c`` request never
  gets this far: Hypercorn would switch before any app code runs, so ``h2c_upgrade.py`` makes it
  serve such a request as HTTP/1.1 instead.

And on every response:

- **A body the app did not read** (a 401, 413, 415, 429 or 503 answered before the request
  body) is read to its end when its declared ``Content-Length`` is within ``MAX_BODY_BYTES``,
  before the response starts, so the connection stays usable for the client's next request.
  Otherwise (chunked, or larger) the response says ``Connection: close``: Hypercorn closes a
  connection whose request was not read to its end, and without that header a client sends
  its next request into a closing connection and loses it (RFC 9112 section 9.6).
- **While the worker drains** (it got SIGTERM, ``service/web/worker.py``) every response says
  ``Connection: close``, so no client sends another request on a connection the server is about
  to close.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

#: The versions these rules were checked against (the module doc).
CHECKED_AGAINST = {"hypercorn": "0.18.0", "h11": "0.16.0"}
#: The largest request line plus header block served; as ``h11_max_incomplete_size``.
MAX_HEADER_BYTES = 16 * 1024
CLOSE = (b"connection", b"close")
#: How long a response waits for the rest of a body it did not need before it says close.
BODY_WAIT = 5.0


class Draining:
    """Whether this worker is shutting down (set from its SIGTERM handler)."""

    now = False


def header_bytes(scope: HTTPScope) -> int:
    """The size of the request line and header fields as they came on the wire (about)."""
    line = len(scope["method"]) + len(scope["raw_path"]) + len(scope["query_string"]) + 12
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def _declared(headers: Iterable[tuple[bytes, bytes]]) -> tuple[int | None, bool, bool]:
    """(Content-Length if one valid value, whether there is one, whether Transfer-Encoding)."""
    lengths = [value for name, value in headers if name.lower() == b"content-length"]
    chunked = any(name.lower() == b"transfer-encoding" for name, _ in headers)
    length = int(lengths[0]) if len(lengths) == 1 and lengths[0].strip().isdigit() else None
    return length, bool(lengths), chunked


class HttpEdge:
    """ASGI middleware with the rules of the module doc; the outermost layer of the app."""

    def __init__(self, app: ASGIFramework, *, max_body_bytes: int, http2_cleartext: bool) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.http2_cleartext = http2_cleartext

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, has_length, chunked = _declared(scope["headers"])
        if scope["http_version"] == "2" and scope["scheme"] == "http" and not self.http2_cleartext:
            await _refuse(send, 505, "Only HTTP/1.1 is served without TLS.", close=False)
            return
        if has_length and chunked:
            await _refuse(send, 400, "Content-Length and Transfer-Encoding together.")
            return
        if header_bytes(scope) > MAX_HEADER_BYTES:
            await _refuse(send, 431, f"The request header exceeds {MAX_HEADER_BYTES} bytes.")
            return
        if scope["http_version"] == "2" or not (chunked or length):
            await self.app(scope, receive, _closing_while_draining(scope, send))
            return
        await self.app(scope, *self._reading_to_the_end(scope, receive, send, length))

    def _reading_to_the_end(
        self,
        scope: HTTPScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        length: int | None,
    ) -> tuple[ASGIReceiveCallable, ASGISendCallable]:
        """``receive`` and ``send`` for a request with a body: see the module doc.

        Quart reads every request's body in a task of its own while the handler runs, whether
        the handler wants it or not (``quart.asgi``), so the end of the body is awaited, not
        read here: a second reader of the same ``receive`` would take messages from Quart's.
        """
        done = asyncio.Event()

        async def tracked_receive() -> ASGIReceiveEvent:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                done.set()  # the last part of the body, or a disconnect: nothing more comes
            return message

        async def read_to_the_end() -> bool:
            if done.is_set():
                return True
            if length is None or length > self.max_body_bytes:
                return False
            return await _ends(done)

        async def finishing_send(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start" and not await read_to_the_end():
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await _closing_while_draining(scope, send)(message)

        return tracked_receive, finishing_send


async def _ends(done: asyncio.Event) -> bool:
    """Whether the rest of the body arrives within ``BODY_WAIT`` seconds."""
    try:
        await asyncio.wait_for(done.wait(), BODY_WAIT)
    except TimeoutError:
        return False
    return True


def _closing_while_draining(scope: HTTPScope, send: ASGISendCallable) -> ASGISendCallable:
    if scope["http_version"] == "2":
        return send  # HTTP/2 has no Connection header (RFC 9113 section 8.2.2)

    async def closing(message: ASGISendEvent) -> None:
        if message["type"] == "http.response.start" and Draining.now:
            headers = list(message.get("headers", []))
            if CLOSE not in headers:
                message = {**message, "headers": [*headers, CLOSE]}
        await send(message)

    return closing


async def _refuse(send: ASGISendCallable, status: int, detail: str, *, close: bool = True) -> None:
    problem: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body = json.dumps(problem).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, CLOSE] if close else headers,
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
