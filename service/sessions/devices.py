"""Device credentials at ``/login``: which one a request presents, whether it names the account
being logged in to, and the cookie that carries a new one back.

The credential itself (a ``device+jwt`` JWS) is ``service.security.tokens.device``; how a known
device is limited is ``service.limits``. Browsers keep it in a cookie; other clients get it as
``device_token`` in the login response and send it back as a ``device_token`` field of the
login body, which wins over the cookie when both are sent.

The cookie is ``__Host-device`` with ``Secure; HttpOnly; SameSite=Strict; Path=/`` and no
``Domain`` (RFC 6265bis section 4.1.3.2: a ``__Host-`` cookie is bound to this host, over
HTTPS); a development server over plain HTTP sets ``device`` without ``Secure`` instead
(``service.web.cookies``).
"""

from __future__ import annotations

import uuid

from quart import request
from werkzeug.datastructures import Headers

from service.security.events import security_event
from service.security.tokens.device import IssuedDevice
from service.security.tokens.verification import TokenError
from service.services import Services
from service.web import cookies

#: The cookie's name: ``__Host-device``, or ``device`` in development over plain HTTP.
COOKIE = "device"


def cookie_name(services: Services) -> str:
    """The name of the device cookie for the current request."""
    return cookies.cookie_name(services.settings, COOKIE)


def presented_credential(services: Services, body_value: str | None) -> str | None:
    """The device credential the current request presents: the body field, else the cookie."""
    if body_value:
        return body_value
    return request.cookies.get(cookie_name(services)) or None


def recognised_device(
    services: Services, credential: str | None, user_id: uuid.UUID | None
) -> str | None:
    """The device id of ``credential`` if it is a valid, unexpired credential of ``user_id``.

    Anything else (none sent, forged, expired, signed by a retired key, another account's, or
    any credential for a username that has no account) is an unknown device: None, and the
    attempt counts on the username-wide limit as it would without one.
    """
    if not credential:
        return None
    try:
        device = services.devices.verify(credential)
    except TokenError as error:
        security_event("device_credential_refused", reason=str(error))
        return None
    if device.user_id != user_id:
        security_event("device_credential_refused", reason="issued for another account")
        return None
    return device.device_id


def with_device_cookie(services: Services, base: Headers, device: IssuedDevice) -> Headers:
    """``base`` and a ``Set-Cookie`` that stores ``device`` in the browser."""
    return cookies.with_cookie(
        services.settings, base, COOKIE, device.value, max_age=services.settings.device_token_ttl
    )
