"""Request ids and the one log line per request.

An ``X-Request-ID`` sent by the client (or a proxy such as Heroku's router) is kept when it is
a sane token, otherwise one is generated; either way it is echoed on the response and written
on every log line of the request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from quart import Quart, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,128}$")

access_log = logging.getLogger("service.access")


def request_id() -> str:
    """The id of the current request."""
    return str(g.get("request_id", "-"))


async def _begin() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()


async def _finish(response: Response) -> Response:
    rid = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = rid
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if access_log.isEnabledFor(logging.INFO):
        principal = g.get("principal")
        user_id = str(principal.user_id) if principal else "-"
        access_log.info(
            "%s %s %d %.1fms user=%s",
            request.method,
            request.path,
            response.status_code,
            (time.perf_counter() - g.get("started", time.perf_counter())) * 1000,
            user_id,
            extra={
                "request_id": rid,
                "user_id": user_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
            },
        )
    return response


class _RequestContextFilter(logging.Filter):
    """Give every record a ``request_id`` so formats can always name it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = request_id()
            except RuntimeError:  # outside a request
                record.request_id = "-"
        return True


def configure_logging(level: str) -> None:
    """Readable key=value lines on stderr; the request id on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestContextFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger("service")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def init_app(app: Quart) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
