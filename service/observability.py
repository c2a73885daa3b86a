"""Request ids, the one access line per request, and the logging set-up (``config/logging.toml``).

An ``X-Request-ID`` sent by the client (or a proxy such as Heroku's router) is kept when it is
a sane token, otherwise one is generated; either way it is echoed on the response and written
on every log line of the request.

Every request ends with one line on ``service.access``: method, path, status, duration in
milliseconds, request id, user id (when a bearer token was accepted) and client address, as
``extra`` fields of the record (JSON keys in production) and as readable text in the message.
It is the only per-request logging work: one record, one ``extra`` dict, nothing formatted
below the configured level.

``configure_logging`` applies ``config/logging.toml`` (``logging.config.dictConfig``): JSON
lines (python-json-logger) when ``APP_ENV=production``, readable lines otherwise, at
``LOG_LEVEL``. The file is looked up in ``CONFIG_DIR`` first, then in the checkout's
``config/`` (tests point ``CONFIG_DIR`` elsewhere for their ``.env`` files).
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

from quart import Quart, Response, g, request

from service.http import client_address
from service.settings import Settings, config_dir

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,128}$")

LOGGING_FILE = "logging.toml"
#: ``config/`` of the checkout the package runs from, for a ``CONFIG_DIR`` without the file.
CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent / "config"

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
            try:
                record.request_id = request_id()
            except RuntimeError:  # outside a request
                record.request_id = "-"
        return True


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``dictConfig`` dictionary of ``config/logging.toml`` for these settings.

    The file's ``stderr`` handler gets the ``json`` formatter in production and ``text``
    otherwise; the ``service`` logger gets ``LOG_LEVEL``.
    """
    config = _read_logging_file()
    config["handlers"]["stderr"]["formatter"] = (
        "json" if settings.app_env == "production" else "text"
    )
    config["loggers"]["service"]["level"] = settings.log_level
    return config


def _read_logging_file() -> dict[str, Any]:
    for directory in (config_dir(), CHECKOUT_CONFIG):
        path = directory / LOGGING_FILE
        if path.is_file():
            with path.open("rb") as file:
                return tomllib.load(file)
    raise FileNotFoundError(
        f"{LOGGING_FILE} is in neither {config_dir()} nor {CHECKOUT_CONFIG}: run from the "
        "repository root or set CONFIG_DIR to a directory that holds it"
    )


def configure_logging(settings: Settings) -> None:
    """Apply ``config/logging.toml``: JSON lines in production, readable lines otherwise.

    ``dictConfig`` would also reset the ``service.*`` loggers that exist already (their
    handlers and levels) because they sit below a configured one. A server configures once,
    but tests build many apps and may have attached a handler to ``service.security`` first:
    those loggers keep what they had.
    """
    below = [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("service.") and isinstance(logger, logging.Logger)
    ]
    kept = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in below]
    _skip_unused_record_fields()
    logging.config.dictConfig(logging_config(settings))
    for logger, handlers, level, propagate in kept:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _skip_unused_record_fields() -> None:
    """Stop filling the record fields no format of ours names (caller, thread, process).

    These are the switches of the Python logging HOWTO's "Optimization" section; together they
    took a fifth of the access line's cost (the caller is found by walking the stack).
    Tracebacks are unaffected.
    """
    logging._srcfile = None  # the HOWTO's documented switch, despite the underscore
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def init_app(app: Quart) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
