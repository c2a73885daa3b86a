"""problem+json (RFC 9457): the typed API errors and the one place that turns errors into responses.

Handlers raise a subclass of ``ApiError``; framework errors (unknown route, wrong method, body
too large, malformed JSON, schema violations) and database outages are mapped here too, so every
error response has the same shape: ``{"type", "title", "status", "detail"}`` plus ``errors``
for validation failures and, for auth failures, ``error`` (the OAuth 2.0 code) and
``error_description`` (the ``detail`` in RFC 6749's alphabet, ``service.security.oauth_errors``).

A database outage is 503 with ``Retry-After`` and one warning line naming the error's classes,
without a traceback (an outage is an operational event, and a line per failed request is
enough). It is any of: SQLAlchemy's ``OperationalError`` and ``InterfaceError`` (the data
layer raises every driver failure without a server answer, such as a timeout or asyncpg's
"another operation is in progress", as one of these, see ``service.db.driver_errors``), a pool
checkout timeout, a lost connection, a bare ``OSError`` or ``TimeoutError`` (opening a
connection), and any driver error with an outage SQLSTATE or that cost its connection. A 503
on a write does not prove that nothing was written: the commit may have landed just before
the connection was lost; ``Idempotency-Key`` is the safe way to retry a create. Any other
error is a bare 500, logged with its traceback (the engines hide SQL parameters).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from quart import Quart, Response, current_app
from quart_schema import RequestSchemaValidationError
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from service.security.oauth_errors import error_description
from service.security.passwords import HashingBusy

PROBLEM_JSON = "application/problem+json"
#: The realm of every ``WWW-Authenticate: Bearer`` challenge (RFC 6750 section 3).
REALM = "service"
#: SQLSTATE classes (PostgreSQL appendix A) of a database that cannot serve right now:
#: connection failures, exhausted resources, shutdown or start-up, a missing database or a
#: refused login, and transactions rolled back by a deadlock or a serialization failure.
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "28", "3D", "40", "53", "57"})

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on; the class says the status, the instance the detail."""

    status: int = 500
    type: str = "about:blank"
    oauth_error: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})


class InvalidRequest(ApiError):
    """A token-endpoint request that is malformed (RFC 6749 section 5.2)."""

    status, oauth_error = 400, "invalid_request"


class InvalidGrant(ApiError):
    """Credentials or refresh token not valid (RFC 6749 section 5.2)."""

    status, oauth_error = 400, "invalid_grant"


class UnsupportedGrantType(ApiError):
    status, oauth_error = 400, "unsupported_grant_type"


class Unauthorized(ApiError):
    """401 with the RFC 6750 challenge: ``error="invalid_token"`` only if a token was sent."""

    status = 401

    def __init__(self, detail: str, *, token_presented: bool) -> None:
        challenge = f'Bearer realm="{REALM}"'
        if token_presented:
            challenge += ', error="invalid_token"'
            self.oauth_error = "invalid_token"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class InvalidClient(ApiError):
    """Client authentication failed (RFC 6749 section 5.2): 401 with the ``Basic`` challenge
    of the scheme the client should use (RFC 7617 section 2)."""

    status, oauth_error = 401, "invalid_client"

    def __init__(self, detail: str) -> None:
        challenge = f'Basic realm="{REALM}", charset="UTF-8"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    """A request this service will not act on (RFC 9110 section 15.5.4): the admin API for a
    non-admin, a login whose address must be confirmed first, a cross-site forgery."""

    status = 403


class EmailNotVerified(Forbidden):
    """The password is right, but the account's address must be confirmed before logging in."""

    type = "urn:service:problem:email-not-verified"


class InvalidAccountToken(ApiError):
    """An email verification or password reset token that is unknown, spent, expired or dead."""

    status, type = 400, "urn:service:problem:invalid-account-token"


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PreconditionFailed(ApiError):
    status = 412


class ValidationFailed(ApiError):
    status = 422


class TooManyRequests(ApiError):
    """A rate limit holds (RFC 6585 section 4); ``Retry-After`` says for how many seconds."""

    status = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ServiceUnavailable(ApiError):
    status = 503

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def problem(
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
    oauth_error: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build a problem+json response: the only function that shapes an error body."""
    body: dict[str, Any] = {
        "type": type_,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if oauth_error is not None:
        body["error"] = oauth_error
        body["error_description"] = error_description(detail, fallback=oauth_error)
    if errors is not None:
        body["errors"] = list(errors)
    response = Response(current_app.json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    if oauth_error is not None:
        response.headers["Cache-Control"] = "no-store"
    return response


def validation_errors(error: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as ``{"field", "message"}`` pairs; input values are never echoed."""
    return [
        {
            "field": ".".join(str(part) for part in item["loc"]) or "body",
            "message": item["msg"].removeprefix("Value error, "),
        }
        for item in error.errors(include_url=False, include_input=False)
    ]


def validation_failed(error: ValidationError) -> ValidationFailed:
    """A schema violation as a 422 whose ``detail`` says what is wrong, not just "invalid".

    A rule that carries a sentence of its own (``detail`` in a pydantic error's context, as the
    password policy's do) is named by it when such rules are all that failed; otherwise one
    failing field is named with its message, several are listed by name.
    """
    items = error.errors(include_url=False, include_input=False)
    fields = validation_errors(error)
    sentences = [(item.get("ctx") or {}).get("detail") for item in items]
    if all(isinstance(sentence, str) for sentence in sentences):
        detail = " ".join(dict.fromkeys(str(sentence) for sentence in sentences))
    else:
        detail = fields_detail(fields)
    return ValidationFailed(detail, errors=fields)


def fields_detail(fields: Sequence[Mapping[str, str]]) -> str:
    """``Invalid password: <message>.`` for one failing field, else the failing fields' names."""
    names = list(dict.fromkeys(field["field"] for field in fields))
    if len(names) == 1:
        messages = "; ".join(field["message"].rstrip(".") for field in fields)
        return f"Invalid {names[0]}: {messages}."
    return f"Invalid fields: {', '.join(names)}."


async def _api_error(error: ApiError) -> Response:
    return problem(
        error.status,
        error.detail,
        type_=error.type,
        oauth_error=error.oauth_error,
        errors=error.errors,
        headers=error.headers,
    )


async def _schema_error(error: RequestSchemaValidationError) -> Response:
    cause = error.validation_error
    if isinstance(cause, ValidationError):
        return await _api_error(validation_failed(cause))
    return problem(
        422,
        "The request body must be a JSON object.",
        errors=[{"field": "body", "message": str(cause)}],
    )


async def _http_error(error: HTTPException) -> Response | HTTPException:
    if isinstance(error, RequestRedirect):
        return _relative_redirect(error)
    if error.code is None or error.code < 400:
        return error
    headers = {
        name: value
        for name, value in error.get_headers()
        if name.lower() not in {"content-type", "content-length"}
    }
    return problem(error.code, _http_detail(error), headers=headers)


def _relative_redirect(redirect: RequestRedirect) -> Response:
    """A routing redirect with a relative ``Location`` (RFC 9110 section 10.2.2 allows one).

    werkzeug builds an absolute URL from the request's ``Host`` header, which the client
    chose: an open redirect to any host through a shared cache or a link.
    """
    target = urlsplit(redirect.new_url)
    # One leading slash: "//host/..." would be a network-path reference to another host.
    location = "/" + target.path.lstrip("/") + (f"?{target.query}" if target.query else "")
    return Response("", status=redirect.code, headers={"Location": location})


def _http_detail(error: HTTPException) -> str:
    details = {
        400: "The request body could not be parsed.",
        404: "No such resource.",
        405: "The method is not allowed for this resource.",
        413: f"The request body exceeds {current_app.config['MAX_CONTENT_LENGTH']} bytes.",
        415: "Send the body as application/json.",
    }
    return details.get(error.code or 0, error.description or HTTPStatus(error.code or 500).phrase)


async def _database_unavailable(error: Exception) -> Response:
    cause = error.orig if isinstance(error, DBAPIError) else error.__cause__
    detail = f" ({type(cause).__name__})" if cause is not None else ""
    logger.warning("database unavailable: %s%s", type(error).__name__, detail)
    return await _api_error(ServiceUnavailable("The database is unavailable; retry shortly."))


async def _database_error(error: DBAPIError) -> Response:
    """A driver error that is not an ``OperationalError``: an outage if its SQLSTATE says so, or
    if it cost the connection (SQLAlchemy invalidated it as a disconnect)."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    outage = isinstance(sqlstate, str) and sqlstate[:2] in OUTAGE_SQLSTATE_CLASSES
    if outage or error.connection_invalidated:
        return await _database_unavailable(error)
    return await _unexpected(error)


async def _hashing_busy(error: HashingBusy) -> Response:
    """The password-hashing queue is full: 503 at once, the same for every account, known or not."""
    return await _api_error(
        ServiceUnavailable(
            "Too many password checks are waiting; retry after the Retry-After delay.",
            retry_after=error.retry_after,
        )
    )


async def _unexpected(error: Exception) -> Response:
    logger.exception("unhandled error", exc_info=error)
    return problem(500, "An unexpected error occurred.")


def register_error_handlers(app: Quart) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(RequestSchemaValidationError, _schema_error)
    app.register_error_handler(HashingBusy, _hashing_busy)
    app.register_error_handler(HTTPException, _http_error)
    outages = (
        OperationalError,
        InterfaceError,
        PoolTimeoutError,
        DisconnectionError,
        OSError,
        TimeoutError,
    )
    for outage in outages:
        app.register_error_handler(outage, _database_unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected)
