"""CORS (quart-cors): which other origins' pages may call the API from a browser.

Off unless ``CORS_ORIGINS`` names origins (``https://app.example.com``, comma-separated; ``*``
for any): with no origin allowed, a browser keeps other sites' pages from reading any answer,
and the service does no CORS work at all.

When on, it covers every response of the app, errors included (a page must be able to read
a 401 or a 422 to act on it). Preflights (``OPTIONS`` with ``Access-Control-Request-Method``)
are answered by Quart's automatic ``OPTIONS`` response, before any bearer check or rate limit
(``service/sessions/bearer.py``, ``service/web/request_limit.py``), and browsers may cache them for
``PREFLIGHT_MAX_AGE`` seconds.

Credentials (``Access-Control-Allow-Credentials: true``) only for the origins named: a page
of one of them may send the refresh cookie (``service/sessions/refresh_cookie.py``) with
``credentials: "include"``. With ``*`` in ``CORS_ORIGINS`` there are no credentials for
anybody (allowing every origin is no allowance to use the user's cookies); pages then send
bearer tokens in the ``Authorization`` header, which they hold themselves, and the CSRF check
(``service/web/csrf.py``) refuses cookie requests from other origins all the same.
"""

from __future__ import annotations

from quart import Quart, Request
from quart_cors import cors

from service.config import Settings

#: Request headers a page may send.
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
    "X-Requested-With",
)
#: Response headers beyond the CORS-safelisted ones that a page may read.
EXPOSE_HEADERS = ("ETag", "Location", "X-Request-ID", "Retry-After")
ALLOW_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Seconds a browser may reuse a preflight's answer.
PREFLIGHT_MAX_AGE = 600


def is_preflight(request: Request) -> bool:
    """A CORS-preflight request (Fetch standard, section 3.2.2): ``OPTIONS`` from a page of
    some ``Origin``, naming the method it wants to send in ``Access-Control-Request-Method``."""
    headers = request.headers
    return (
        request.method == "OPTIONS"
        and "Origin" in headers
        and "Access-Control-Request-Method" in headers
    )


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
        allow_credentials="*" not in settings.cors_origins,
        max_age=PREFLIGHT_MAX_AGE,
    )
