"""The refresh token in a cookie, for browsers: when a request uses it, and setting it.

Pages should not hold a refresh token where their scripts (and an injected script) can read
it. A client opts in per request with ``?cookie=true`` at ``/login`` or ``/refresh``: the
answer then sets the refresh token as the cookie ``__Host-refresh_token`` (``HttpOnly;
Secure; SameSite=Strict; Path=/``, ``Max-Age`` the session's remaining lifetime;
``refresh_token`` without ``Secure`` in development over plain HTTP, ``service.web.cookies``)
and leaves ``refresh_token`` out of the JSON body. ``/refresh`` and ``/logout`` read the cookie
when the body names no refresh token; a ``/refresh`` that used it answers in cookie mode too,
and ``/logout`` clears it.

Every request in cookie mode (opting in, or carried by the cookie) must pass the CSRF checks
of ``service.web.csrf``.
"""

from __future__ import annotations

from quart import request
from werkzeug.datastructures import Headers

from service.errors import InvalidRequest
from service.services import Services
from service.web import cookies, csrf

COOKIE = "refresh_token"
#: The query parameter that asks for cookie mode.
PARAMETER = "cookie"
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def requested() -> bool:
    """Whether the request asks for cookie mode (``?cookie=true``); ``InvalidRequest`` for a
    value that is not a boolean."""
    value = request.args.get(PARAMETER)
    if value is None:
        return False
    if value.lower() not in _BOOLEANS:
        raise InvalidRequest(f"{PARAMETER} must be true or false.")
    return _BOOLEANS[value.lower()]


def presented(services: Services) -> str | None:
    """The refresh token in the request's cookie, if any."""
    return request.cookies.get(cookies.cookie_name(services.settings, COOKIE)) or None


def check(services: Services) -> None:
    """The CSRF checks every cookie-mode request must pass (``Forbidden`` otherwise)."""
    csrf.check_cookie_request(services.settings)


def with_refresh_cookie(services: Services, base: Headers, token: str, max_age: int) -> Headers:
    """``base`` and the ``Set-Cookie`` that stores ``token`` for ``max_age`` seconds."""
    return cookies.with_cookie(services.settings, base, COOKIE, token, max_age=max_age)


def clearing(services: Services, base: Headers) -> Headers:
    """``base`` and a ``Set-Cookie`` that removes the refresh cookie."""
    return cookies.with_cookie(services.settings, base, COOKIE, "", max_age=0)
