"""The OpenAPI document's extras: the provider and the decorators that feed it.

quart-schema builds ``/openapi.json`` from the route decorators; ``ServiceOpenAPIProvider``
adds what it cannot know: errors are ``application/problem+json``; every operation that reads a
body can answer 400, 413 and 415 before its handler runs; a body may be optional
(``optional_body``); which headers responses carry (``response_headers``, ``PROBLEM_HEADERS``);
and the one form route (``/login``) also takes multipart and JSON bodies. ``openapi_info`` gives
the document's title and description from the settings (``API_TITLE``, ``API_DESCRIPTION``).

quart-schema takes an operation's summary from the first line of the handler's docstring and its
description from the lines after it. Swagger UI shows the summary as plain text and renders the
description as Markdown, so a route's docstring opens with one plain sentence on one line, then
a blank line and the details (``tests/test_openapi_texts.py`` holds every route to that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from quart import Quart
from quart_schema import DataSource, Info, OpenAPIProvider, QuartSchema, document_response
from werkzeug.routing import BaseConverter, Rule, UUIDConverter

from service.config import Settings
from service.schemas import Problem

T = TypeVar("T", bound=Callable[..., Any])

NO_CONTENT_ATTRIBUTE = "_service_no_content"
NOT_MODIFIED_ATTRIBUTE = "_service_not_modified"
OPTIONAL_BODY_ATTRIBUTE = "_service_optional_body"
HEADERS_ATTRIBUTE = "_service_response_headers"
OPTIONAL_HEADERS_ATTRIBUTE = "_service_optional_response_headers"

#: The response headers the document describes (OpenAPI header objects), by name.
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "The item's version: send it in `If-Match` or `If-None-Match`.",
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "Location": {
        "description": "The path of the new resource.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "`no-store`: a response with tokens must not be cached.",
        "schema": {"type": "string", "pattern": "no-store"},
    },
    "Set-Cookie": {
        "description": "The device cookie (`__Host-device`; `device` in development over plain "
        "HTTP) and, in cookie mode, the refresh cookie (`__Host-refresh_token`; "
        "`refresh_token`): `HttpOnly; SameSite=Strict; Path=/`, `Secure` with the prefix.",
        "schema": {"type": "string", "pattern": "^(__Host-)?(device|refresh_token)="},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": 'The bearer challenge (RFC 6750 section 3), with `error="invalid_token"` '
        "when a token was sent and refused; at `/introspect`, the `Basic` challenge of client "
        "authentication (RFC 7617).",
        "schema": {"type": "string", "pattern": "^(Bearer|Basic) "},
    },
}
#: Headers every problem response of a status carries.
PROBLEM_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
#: Headers of the bodiless answers.
EMPTY_RESPONSE_HEADERS = {304: ("ETag",)}

#: The version of the API the document describes (``info.version``).
API_VERSION = "1.0.0"

#: What any operation that reads a body can answer before its handler runs: a body that is not
#: JSON (400), too large (413) or of another media type (415); see ``service/web/requests.py``.
BODY_PROBLEMS = (400, 413, 415)


def openapi_info(settings: Settings) -> Info:
    """The document's ``info``: its title and description are ``API_TITLE`` and
    ``API_DESCRIPTION``."""
    return Info(title=settings.api_title, version=API_VERSION, description=settings.api_description)


def no_content(handler: T) -> T:
    """Document that a route answers ``204 No Content`` on success."""
    setattr(handler, NO_CONTENT_ATTRIBUTE, True)
    return handler


def not_modified(handler: T) -> T:
    """Document that a conditional read can answer ``304 Not Modified`` (with its ``ETag``)."""
    setattr(handler, NOT_MODIFIED_ATTRIBUTE, True)
    return handler


def optional_body(handler: T) -> T:
    """Document that a route's request body may be left out (``requestBody.required: false``)."""
    setattr(handler, OPTIONAL_BODY_ATTRIBUTE, True)
    return handler


def response_headers(status: int, *names: str, optional: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Document headers (names of ``RESPONSE_HEADERS``) that a route's ``status`` always has,
    and the ``optional`` ones it has only in some answers.

    Documentation only: nothing checks them at run time, where each check would cost time on
    every response; the schemathesis run checks them against the live service.
    """

    def decorate(handler: T) -> T:
        documented: dict[int, tuple[str, ...]] = getattr(handler, HEADERS_ATTRIBUTE, {})
        setattr(handler, HEADERS_ATTRIBUTE, {**documented, status: names})
        if optional:
            sometimes: dict[int, tuple[str, ...]] = getattr(handler, OPTIONAL_HEADERS_ATTRIBUTE, {})
            setattr(handler, OPTIONAL_HEADERS_ATTRIBUTE, {**sometimes, status: optional})
        return handler

    return decorate


def problems(*status_codes: int) -> Callable[[T], T]:
    """Document the error statuses a route can answer with, each a problem+json body."""

    def decorate(handler: T) -> T:
        for status in status_codes:
            handler = document_response(Problem, status)(handler)
        return handler

    return decorate


#: The paths of the "auth" blueprint in the order a client meets them. Its routes are declared
#: by several feature packages (accounts, login, sessions, oauth), so the order they are
#: registered in follows imports, not the story the docs page should tell.
CLIENT_JOURNEY = (
    "/signup",
    "/login",
    "/login/mfa",
    "/refresh",
    "/me",
    "/logout",
    "/me/password",
    "/sessions",
    "/sessions/<id:session_id>",
    "/.well-known/jwks.json",
)


class ServiceOpenAPIProvider(OpenAPIProvider):
    """quart-schema's generator, with problem+json errors and the login body's three encodings."""

    def __init__(self, app: Quart, extension: QuartSchema) -> None:
        super().__init__(app, extension)
        # The handlers carry what the decorators above documented; routes added later are
        # in this same mapping.
        self._handlers = app.view_functions

    def generate_rules(self) -> Iterable[Rule]:
        """Leave out the trailing-slash twins (``/items/``) that exist for old clients, and the
        static files of the docs page, which are not part of the API; list the account and
        session operations in the order a client meets them (``CLIENT_JOURNEY``)."""
        rules = [
            rule
            for rule in super().generate_rules()
            if not (rule.rule.endswith("/") and rule.rule != "/")
            and not (rule.endpoint == "static" or rule.endpoint.endswith(".static"))
        ]
        blueprints = list(dict.fromkeys(rule.endpoint.partition(".")[0] for rule in rules))

        def place(rule: Rule) -> tuple[int, int]:
            journey = CLIENT_JOURNEY.index(rule.rule) if rule.rule in CLIENT_JOURNEY else 0
            return blueprints.index(rule.endpoint.partition(".")[0]), journey

        return sorted(rules, key=place)  # stable: every other rule keeps its place

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        handler = self._handlers[rule.endpoint]
        for operation in next(iter(paths.values())).values():
            # The lines after the summary, without the blank line that separates them.
            description = operation.pop("description", "").strip()
            if description:
                operation["description"] = description
            responses = operation["responses"]
            if getattr(handler, NO_CONTENT_ATTRIBUTE, False):
                responses[204] = {"description": "No Content"}
            if getattr(handler, NOT_MODIFIED_ATTRIBUTE, False):
                responses[304] = {"description": "Not Modified"}
            if "requestBody" in operation:
                if getattr(handler, OPTIONAL_BODY_ATTRIBUTE, False):
                    operation["requestBody"]["required"] = False
                for status in BODY_PROBLEMS:
                    if status not in responses:
                        responses[status], problem_components = self.build_response_object(
                            Problem, None
                        )
                        components.update(problem_components)
            headers = {
                **PROBLEM_HEADERS,
                **EMPTY_RESPONSE_HEADERS,
                **getattr(handler, HEADERS_ATTRIBUTE, {}),
            }
            for status, names in headers.items():
                if status in responses:
                    responses[status]["headers"] = {
                        name: {**RESPONSE_HEADERS[name], "required": True} for name in names
                    }
            for status, names in getattr(handler, OPTIONAL_HEADERS_ATTRIBUTE, {}).items():
                if status in responses:
                    responses[status].setdefault("headers", {}).update(
                        {name: {**RESPONSE_HEADERS[name], "required": False} for name in names}
                    )
        return paths, components

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        """UUID path parameters (``<id:...>``, ``<uuid:...>``) are documented as ``uuid``."""
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, UUIDConverter):
            parameter["schema"]["format"] = "uuid"
        return parameter

    def build_response_object(
        self, model: Any, headers_model: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        response, components = super().build_response_object(model, headers_model)
        if model is Problem:
            response["content"] = {
                "application/problem+json": response["content"]["application/json"]
            }
        return response, components

    def build_request_body(
        self, model: Any, source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        body, components = super().build_request_body(model, source)
        if source is DataSource.FORM:
            schema = body["content"]["application/x-www-form-urlencoded"]["schema"]
            for media_type in ("multipart/form-data", "application/json"):
                body["content"][media_type] = {"schema": schema}
        body["required"] = True
        return body, components
