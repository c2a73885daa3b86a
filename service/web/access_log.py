"""Request ids and the one access line per request.

An ``X-Request-ID`` sent by the client (or a proxy such as Heroku's router) is kept when it is
a sane token, otherwise one is generated; either way it is echoed on the response and written
on every log line of the request (``RequestContextFilter``) and on its security events.

Every request ends with one line on ``service.access``: method, path, status, duration in
milliseconds, request id, user id (when a bearer token was accepted) and client address, as
``extra`` fields of the record (JSON keys in production) and as readable text in the message.
It is the only per-request logging work: one record, one ``extra`` dict, nothing formatted
below the configured level.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from quart import Quart, Response, g, has_request_context, request

from service.security.events import bind_request
from service.web.requests import client_address

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,128}$")

access_log = logging.getLogger("service.access")


def request_id() -> str:
    """The id of the current request."""
    return str(g.get("request_id", "-"))


async def _begin() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    rid = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_id = rid
    g.started = time.perf_counter()
    bind_request(request_id=rid, client_address=client_address())


async def _finish(response: Response) -> Response:
    rid = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = rid
    if access_log.isEnabledFor(logging.INFO):
        _log_access(rid, response.status_code)
    return response


def _log_access(rid: str, status: int) -> None:
    duration_ms = round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2)
    principal = g.get("principal")
    user_id = str(principal.user_id) if principal else None
    method, path, client = request.method, request.path, client_address()
    extra = {
        "request_id": rid,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "user_id": user_id,
        "client_address": client,
    }
    access_log.info(
        "%s %s %d %.1fms user=%s client=%s",
        method,
        # A decoded path may hold a line break (%0A): quoted, it cannot forge a text line.
        path if path.isprintable() else json.dumps(path),
        status,
        duration_ms,
        user_id or "-",
        client or "-",
        extra=extra,
    )


class RequestContextFilter(logging.Filter):
    """Give every record a ``request_id`` (``-`` outside a request) so formats can name it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id() if has_request_context() else "-"
        return True


def init_app(app: Quart) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
