"""Cookies the service sets: whether the current request gets the ``__Host-`` form.

A ``__Host-`` cookie (RFC 6265bis section 4.1.3.2) must be ``Secure``, have ``Path=/`` and no
``Domain``: it is bound to this host and only travels over HTTPS. Chromium and Firefox treat
``http://localhost`` and ``http://127.0.0.1`` as secure contexts and keep such a cookie there
too, but a development server is also reached over plain HTTP by other names (a LAN address,
a container's name), where a browser would drop it. So a development server answering a plain
HTTP request (``APP_ENV=development``) sets each cookie under its plain name without
``Secure``; every other environment, and development over HTTPS, uses the ``__Host-`` form.
"""

from __future__ import annotations

from quart import request
from werkzeug.datastructures import Headers
from werkzeug.http import dump_cookie

from service.config import Settings

HOST_PREFIX = "__Host-"


def secure_cookies(settings: Settings) -> bool:
    """Whether the current request's cookies are ``__Host-`` and ``Secure``."""
    return settings.app_env != "development" or request.scheme in {"https", "wss"}


def cookie_name(settings: Settings, name: str) -> str:
    """The name a cookie called ``name`` has for the current request."""
    return f"{HOST_PREFIX}{name}" if secure_cookies(settings) else name


def with_cookie(
    settings: Settings, base: Headers, name: str, value: str, *, max_age: int
) -> Headers:
    """``base`` and a ``Set-Cookie`` for ``name``: ``HttpOnly; SameSite=Strict; Path=/``, and
    ``Secure`` with the ``__Host-`` prefix when ``secure_cookies``. ``max_age=0`` clears it."""
    secure = secure_cookies(settings)
    cookie = dump_cookie(
        cookie_name(settings, name),
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="Strict",
    )
    combined = Headers(base)
    combined.add("Set-Cookie", cookie)
    return combined
