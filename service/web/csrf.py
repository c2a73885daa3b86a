"""Cross-site request forgery checks for requests that a cookie authenticates.

A browser attaches cookies to requests that other sites' pages cause, so a request that a
cookie alone authenticates must prove it comes from a page allowed to make it (OWASP's CSRF
cheat sheet). Two checks, both required:

- **A custom request header** (``X-Requested-With``, any non-empty value). An HTML form cannot
  set one, and a cross-origin ``fetch`` that sets one needs a CORS preflight, which only
  ``CORS_ORIGINS`` pass.
- **The Origin** (RFC 6454 section 7): when the request has one, it must be this service's
  own (its ``Host``, over HTTP or HTTPS: behind a TLS-terminating proxy the service sees plain
  HTTP) or one of ``CORS_ORIGINS`` (not ``*``: allowing every origin is no allowance to use the
  user's cookies). ``Origin: null`` (sandboxed frames, ``file:`` pages, some redirects) is
  refused. Browsers send an Origin with every ``POST``; a request without one comes from a
  client that is not a browser, which no other site can drive.
"""

from __future__ import annotations

import logging

from quart import request

from service.config import Settings
from service.errors import Forbidden
from service.security.events import security_event

CSRF_HEADER = "X-Requested-With"


def check_cookie_request(settings: Settings) -> None:
    """``Forbidden`` unless the current request passes both checks (a ``csrf_refused`` event)."""
    if not request.headers.get(CSRF_HEADER):
        security_event("csrf_refused", level=logging.WARNING, reason="no custom header")
        raise Forbidden(
            f"A request that uses the refresh cookie must send the {CSRF_HEADER} header "
            "(any value), which pages of other sites cannot send."
        )
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in allowed_origins(settings):
        security_event("csrf_refused", level=logging.WARNING, reason="origin not allowed")
        raise Forbidden(
            "A request that uses the refresh cookie must come from this service's own origin "
            "or one of CORS_ORIGINS."
        )


def allowed_origins(settings: Settings) -> set[str]:
    """The origins whose pages may make cookie requests: this host's and ``CORS_ORIGINS``."""
    host = request.host.lower()
    own = {f"http://{host}", f"https://{host}"}
    return own | {origin for origin in settings.cors_origins if origin != "*"}
