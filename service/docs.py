"""The OpenAPI document's extras and the interactive docs page, with assets served locally.

quart-schema builds ``/openapi.json`` from the route decorators; ``ServiceOpenAPIProvider``
adds what it cannot know: errors are ``application/problem+json`` and the one form route
(``/login``) also takes multipart and JSON bodies. ``/docs`` is Swagger UI whose JavaScript and
CSS come from the installed ``swagger-ui-bundle-v2`` package through this blueprint, never from a
CDN, so "Authorize" and "Try it out" work offline and under a strict Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from quart import Blueprint, Response, send_from_directory
from quart_schema import DataSource, OpenAPIProvider, document_response, hide
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound
from werkzeug.routing import Rule

from service.schemas import Problem

bp = Blueprint("docs", __name__, static_folder="static", static_url_path="/docs/static")

#: The Swagger UI files the page needs; nothing else of the package is served.
SWAGGER_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Service API docs</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/static/docs.js"></script>
</body>
</html>
"""

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

T = TypeVar("T", bound=Callable[..., Any])

_NO_CONTENT_ATTRIBUTE = "_service_no_content"


def no_content(handler: T) -> T:
    """Document that a route answers ``204 No Content`` on success."""
    setattr(handler, _NO_CONTENT_ATTRIBUTE, True)
    return handler


def problems(*status_codes: int) -> Callable[[T], T]:
    """Document the error statuses a route can answer with, each a problem+json body."""

    def decorate(handler: T) -> T:
        for status in status_codes:
            handler = document_response(Problem, status)(handler)
        return handler

    return decorate


@bp.get("/docs")
@hide
async def docs_page() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html", headers={"Content-Security-Policy": DOCS_CSP})


@bp.get("/docs/assets/<name>")
@hide
async def docs_asset(name: str) -> Response:
    if name not in SWAGGER_ASSETS:
        raise NotFound()
    response = await send_from_directory(swagger_ui_path, name)
    response.cache_control.public = True
    response.cache_control.max_age = 86_400
    return response


class ServiceOpenAPIProvider(OpenAPIProvider):
    """quart-schema's generator, with problem+json errors and the login body's three encodings."""

    def generate_rules(self) -> Iterable[Rule]:
        """Leave out the trailing-slash twins (``/items/``) that exist for old clients."""
        for rule in super().generate_rules():
            if not (rule.rule.endswith("/") and rule.rule != "/"):
                yield rule

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        if getattr(self._app.view_functions[rule.endpoint], _NO_CONTENT_ATTRIBUTE, False):
            for operation in next(iter(paths.values())).values():
                operation["responses"]["204"] = {"description": "No Content"}
        return paths, components

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
