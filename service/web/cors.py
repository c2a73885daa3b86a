"""CORS (quart-cors): which other origins' pages may call the API from a browser.

Off unless ``CORS_ORIGINS`` names origins (``https://app.example.com``, comma-separated; ``*``
for any): with no origin allowed, a browser keeps other sites' pages from reading any answer,
and the service does no CORS work at all.

When on, it covers every response of the app, errors included (a page must be able to read
a 401 or a 422 to act on it). Preflights (``OPTIONS`` with ``Access-Control-Request-Method``)
are answered by Quart's automatic ``OPTIONS`` response, before any bearer check or rate limit
(``service/auth/bearer.py``, ``service/web/request_limit.py``), and browsers may cache them for
``PREFLIGHT_MAX_AGE`` seconds.

No credentials mode (``Access-Control-Allow-Credentials``): the API reads no cookies; a page
sends its bearer token in the ``Authorization`` header, which it must hold itself. That is
also why ``*`` is acceptable here: no browser credentials ride along with a request.
"""

from __future__ import annotations

from quart import Quart
from quart_cors import cors

from service.settings import Settings

#: Request headers a page may send.
ALLOW_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID")
#: Response headers beyond the CORS-safelisted ones that a page may read.
EXPOSE_HEADERS = ("ETag", "Location", "X-Request-ID", "Retry-After")
ALLOW_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Seconds a browser may reuse a preflight's answer.
PREFLIGHT_MAX_AGE = 600


def init_app(app: Quart, settings: Settings) -> None:
    """Answer cross-origin requests from ``CORS_ORIGINS``; nothing at all if it is empty."""
    if not settings.cors_origins:
        return
    cors(
        app,
        allow_origin=settings.cors_origins,
        allow_headers=ALLOW_HEADERS,
        allow_methods=ALLOW_METHODS,
        expose_headers=EXPOSE_HEADERS,
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
    )
