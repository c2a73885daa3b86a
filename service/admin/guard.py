"""The admin check: every request under ``/admin`` needs an access token of an active admin.

An app-wide ``before_request`` hook, after bearer authentication (which answers 401 under
``/admin`` as under the other protected prefixes): the caller's role and ``is_active`` are read
from the database on every request, never from the token's ``role`` claim, so demoting or
disabling an admin takes their power away at the next request (OWASP ASVS 5.0 V8.2.1, V8.3.1).
Anyone else gets 403 for every path below ``/admin``, routed or not, so a non-admin learns
nothing about the admin API beyond the documented paths. Each refusal is an
``admin_access_denied`` security event.

``OPTIONS`` is no exception (its ``Allow`` lists what a path offers): without a token it is
401, for a non-admin 403. The one request that passes without a token is a CORS preflight
while ``CORS_ORIGINS`` is set, since browsers send preflights without credentials (Fetch
standard, section 3.2.2); its ``Allow`` names the methods the OpenAPI document already
publishes for the path. Without CORS a preflight is just another ``OPTIONS``.
"""

from __future__ import annotations

import logging

from quart import g, request

from service.admin import queries
from service.admin.actions import NOT_AN_ADMIN, Actor
from service.errors import Forbidden
from service.security.events import security_event
from service.security.roles import may_administer
from service.services import services
from service.sessions.bearer import authenticate
from service.web.cors import is_preflight

PREFIX = "/admin"


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


async def require_admin_under_admin_prefix() -> None:
    """``Forbidden`` unless the caller is an active admin now; a CORS preflight passes."""
    if not is_admin_path(request.path) or _answered_without_a_token():
        return
    principal = await authenticate()
    async with services().db.read() as db:
        rights = await queries.select_rights(db, principal.user_id)
    if rights is None or not may_administer(rights[1], rights[2]):
        security_event(
            "admin_access_denied",
            level=logging.WARNING,
            user_id=principal.user_id,
            method=request.method,
            path=request.path,
        )
        raise Forbidden(NOT_AN_ADMIN)
    g.admin = Actor(name=rights[0], id=principal.user_id)


def _answered_without_a_token() -> bool:
    """A CORS preflight while CORS is on; everything else under ``/admin`` needs an admin."""
    return bool(services().settings.cors_origins) and is_preflight(request)


def current_admin() -> Actor:
    """The admin calling a route under ``/admin`` (set by the hook above)."""
    admin: Actor = g.admin
    return admin
