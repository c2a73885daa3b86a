"""Cleartext HTTP/2 by ``Upgrade: h2c``: ignored unless ``HTTP2_CLEARTEXT`` is on.

Hypercorn 0.18.0 (``CHECKED_AGAINST`` in ``http_edge.py``) answers every body-less HTTP/1.1
request that carries ``Upgrade: h2c`` with ``101 Switching Protocols`` inside its protocol
layer, before any ASGI code runs, and has no setting to stop it; the app could then only refuse
over HTTP/2. RFC 9110 section 7.8 lets a server ignore an Upgrade header, and RFC 9113 section
3.1 deprecates this upgrade, so with cleartext HTTP/2 off the request is served as the
HTTP/1.1 request it also is, and no protocol switch ever happens.

The rule is a subclass of Hypercorn's HTTP/1.1 protocol that skips the upgrade check for such
requests, put in the place where Hypercorn's protocol wrapper looks it up. It is installed per
worker process at start-up (``before_serving``), before the worker accepts a connection; prior
knowledge HTTP/2 (``PRI * HTTP/2.0``) is still answered 505 by ``http_edge.py``.
"""

from __future__ import annotations

import h11
import hypercorn.protocol
from hypercorn.protocol.h11 import H11Protocol


def asks_for_h2c(request: h11.Request) -> bool:
    """Whether an HTTP/1.1 request asks to switch to cleartext HTTP/2."""
    return any(
        name.lower() == b"upgrade" and value.strip().lower() == b"h2c"
        for name, value in request.headers
    )


class HttpOneOnly(H11Protocol):
    """Hypercorn's HTTP/1.1 protocol, serving ``Upgrade: h2c`` requests without switching."""

    async def _check_protocol(self, event: h11.Request) -> None:
        if not asks_for_h2c(event):
            await super()._check_protocol(event)


def install(*, http2_cleartext: bool) -> None:
    """Make this process's Hypercorn ignore h2c upgrades, or serve them when configured."""
    hypercorn.protocol.H11Protocol = H11Protocol if http2_cleartext else HttpOneOnly  # type: ignore[attr-defined]
