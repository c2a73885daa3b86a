"""The OpenAPI document and the docs page, and meta-tests that walk every route of the app."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from quart import Quart
from quart.typing import TestClientProtocol as Client
from quart_schema.validation import QUART_SCHEMA_RESPONSE_ATTRIBUTE
from werkzeug.routing import Rule

from service.web.openapi import NO_CONTENT_ATTRIBUTE

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
CDN_WORDS = ("cdn", "unpkg", "jsdelivr", "cloudflare", "googleapis", "http://", "https://")


@pytest.fixture
async def spec(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = await response.get_json()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``$ref`` into ``components``."""
    while "$ref" in schema:
        *_, section, name = schema["$ref"].split("/")
        schema = spec["components"][section][name]
    return schema


# --- the document ---------------------------------------------------------------------------


async def test_the_document_is_openapi_3_1(spec: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"])
    assert spec["info"]["title"]
    assert spec["info"]["version"]
    assert spec["paths"]


async def test_the_account_operations_come_in_the_order_a_client_meets_them(
    spec: dict[str, Any],
) -> None:
    """Their routes are declared by several packages; the docs page still tells one story."""
    assert list(spec["paths"])[:10] == [
        "/signup",
        "/login",
        "/login/mfa",
        "/refresh",
        "/me",
        "/logout",
        "/me/password",
        "/sessions",
        "/sessions/{session_id}",
        "/.well-known/jwks.json",
    ]


async def test_the_document_passes_a_strict_openapi_validator(spec: dict[str, Any]) -> None:
    """The whole document, as ``openapi-spec-validator`` (what code generators and gateways
    use) reads it: every error, not only the first, so a failure lists them all."""
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in OpenAPIV31SpecValidator(spec).iter_errors()
    ]
    assert errors == []


async def test_optional_header_parameters_have_valid_schemas(spec: dict[str, Any]) -> None:
    headers = {
        (method, path, parameter["name"]): parameter["schema"]
        for method, path, operation in operations(spec)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header"
    }
    assert set(headers) == {
        ("GET", "/items/{item_id}", "if-none-match"),
        ("PUT", "/items/{item_id}", "if-match"),
        ("PATCH", "/items/{item_id}", "if-match"),
        ("POST", "/items", "idempotency-key"),
        ("POST", "/signup", "idempotency-key"),
    }
    for schema in headers.values():
        assert schema["type"] == "string"
        assert "default" not in schema


async def test_every_operation_has_a_summary_and_response_schemas(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        where = f"{method} {path}"
        assert operation.get("summary"), where
        assert any(status.startswith("2") for status in operation["responses"]), where
        for status, response in operation["responses"].items():
            assert response.get("description"), f"{where} {status}"
            if status in {"204", "304"}:  # No Content, Not Modified: never a body
                assert "content" not in response, where
                continue
            assert response.get("content"), f"{where} {status}"
            for media_type in response["content"].values():
                assert media_type.get("schema"), f"{where} {status}"


#: POSTs that are actions on the caller's account and read no body at all.
BODYLESS_ACTIONS = {("POST", "/me/email/resend")}


async def test_every_route_with_a_body_documents_its_request_schema(
    spec: dict[str, Any],
) -> None:
    for method, path, operation in operations(spec):
        if method not in {"POST", "PUT", "PATCH"}:
            continue
        body = operation.get("requestBody")
        if (method, path) in BODYLESS_ACTIONS:
            assert body is None, f"{method} {path} takes no body"
            continue
        assert body, f"{method} {path} has no requestBody"
        assert "application/json" in body["content"], f"{method} {path}"
        for media_type in body["content"].values():
            schema = resolve(spec, media_type["schema"])
            assert schema.get("properties"), f"{method} {path}"


async def test_the_item_schemas_describe_their_fields(spec: dict[str, Any]) -> None:
    create = resolve(
        spec,
        spec["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    )
    assert create["required"] == ["name"]
    assert create["additionalProperties"] is False
    item = resolve(
        spec,
        spec["paths"]["/items"]["post"]["responses"]["201"]["content"]["application/json"][
            "schema"
        ],
    )
    assert set(item["properties"]) == {"id", "name", "description", "created_at", "updated_at"}


async def test_login_documents_form_multipart_and_json_bodies(spec: dict[str, Any]) -> None:
    content = spec["paths"]["/login"]["post"]["requestBody"]["content"]

    assert set(content) >= {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json",
    }
    for media_type in content.values():
        schema = resolve(spec, media_type["schema"])
        assert {"username", "password"} <= set(schema["properties"])
        assert {"username", "password"} <= set(schema["required"])


async def test_login_documents_its_token_response_and_oauth_errors(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/login"]["post"]["responses"]
    answer = responses["200"]["content"]["application/json"]["schema"]
    variants = {
        variant["$ref"].rsplit("/", 1)[1]: resolve(spec, variant) for variant in answer["anyOf"]
    }

    assert set(variants["LoginTokens"]["properties"]) >= {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
        "device_token",
    }
    # The refresh grant's pair, and the cookie mode's answers without the refresh token.
    assert "refresh_token" in variants["TokenPair"]["properties"]
    assert "refresh_token" not in variants["CookieLoginTokens"]["properties"]
    assert "refresh_token" not in variants["AccessTokens"]["properties"]
    # The first step of a login with a second factor.
    assert set(variants["MfaChallenge"]["properties"]) == {
        "mfa_required",
        "mfa_token",
        "expires_in",
    }
    assert {"400", "403"} <= set(responses)


@pytest.mark.parametrize("path", ["/login", "/refresh"])
async def test_the_token_endpoints_document_cookie_mode(spec: dict[str, Any], path: str) -> None:
    operation = spec["paths"][path]["post"]
    (cookie,) = [parameter for parameter in operation["parameters"] if parameter["in"] == "query"]

    assert cookie["name"] == "cookie"
    assert cookie["schema"]["type"] == "boolean"
    assert "X-Requested-With" in cookie["description"]
    assert "403" in operation["responses"]
    assert "__Host-refresh_token" in operation["description"]


async def test_security_schemes_are_bearer_and_the_oauth2_password_flow(
    spec: dict[str, Any],
) -> None:
    schemes = spec["components"]["securitySchemes"].values()

    http = [scheme for scheme in schemes if scheme["type"] == "http"]
    # Bearer for users' access tokens; Basic for the introspection clients (RFC 7662 2.1).
    assert [scheme["scheme"].lower() for scheme in http] == ["bearer", "basic"]
    oauth2 = [scheme for scheme in schemes if scheme["type"] == "oauth2"]
    assert len(oauth2) == 1
    assert oauth2[0]["flows"]["password"]["tokenUrl"] == "/login"


async def test_every_items_operation_requires_the_bearer_scheme(spec: dict[str, Any]) -> None:
    names = {name: scheme["type"] for name, scheme in spec["components"]["securitySchemes"].items()}
    items_operations = [op for op in operations(spec) if op[1].startswith("/items")]
    assert len(items_operations) == 6

    for method, path, operation in items_operations:
        requirements = operation.get("security", spec.get("security"))
        assert requirements, f"{method} {path}"
        assert {} not in requirements, f"{method} {path} allows anonymous calls"
        schemes = {name for requirement in requirements for name in requirement}
        assert "http" in {names[name] for name in schemes}, f"{method} {path}"
        assert "401" in operation["responses"], f"{method} {path}"


async def test_the_public_operations_need_no_token(spec: dict[str, Any]) -> None:
    for path in ("/signup", "/login", "/refresh", "/healthz", "/readyz"):
        for operation in spec["paths"][path].values():
            assert not operation.get("security", spec.get("security")), path


async def test_error_responses_are_problem_json(spec: dict[str, Any]) -> None:
    errors = 0
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            errors += 1
            assert list(response["content"]) == ["application/problem+json"], (
                f"{method} {path} {status}"
            )
            schema = resolve(spec, response["content"]["application/problem+json"]["schema"])
            assert {"type", "title", "status", "detail"} <= set(schema["properties"])
    assert errors > 10


async def test_the_trailing_slash_twins_stay_out_of_the_document(spec: dict[str, Any]) -> None:
    assert "/items/" not in spec["paths"]


async def test_every_public_route_is_documented(app: Quart, spec: dict[str, Any]) -> None:
    undocumented = {"static", "openapi", "docs.static", "docs.docs_page", "docs.docs_asset"}
    documented = {(method, path) for method, path, _ in operations(spec)}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in undocumented or rule.rule.endswith("/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method.lower() in HTTP_METHODS:
                assert (method, path) in documented, f"{method} {path}"


# --- the docs page --------------------------------------------------------------------------


class AssetCollector(HTMLParser):
    """The URLs of the scripts, stylesheets and icons a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            if values.get("src"):
                self.scripts.append(str(values["src"]))
            else:
                self._in_script = True
        if tag == "link" and values.get("href"):
            self.links.append(str(values["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


async def docs_assets(client: Client) -> AssetCollector:
    response = await client.get("/docs")
    assert response.status_code == 200
    collector = AssetCollector()
    collector.feed(await response.get_data(as_text=True))
    return collector


async def test_docs_is_an_html_page(client: Client) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "swagger-ui" in (await response.get_data(as_text=True))


async def test_docs_loads_only_same_origin_assets(client: Client) -> None:
    assets = await docs_assets(client)

    assert assets.scripts
    assert any(url.endswith(".css") for url in assets.links)
    for url in assets.scripts + assets.links:
        assert url.startswith("/docs/"), url
    assert assets.inline_scripts == 0


async def test_docs_mentions_no_cdn(client: Client) -> None:
    page = (await (await client.get("/docs")).get_data(as_text=True)).lower()
    for word in CDN_WORDS:
        assert word not in page


async def test_docs_assets_are_served_with_their_content_types(client: Client) -> None:
    assets = await docs_assets(client)
    expected = {
        ".js": {"text/javascript", "application/javascript"},
        ".css": {"text/css"},
        ".png": {"image/png"},
    }

    for url in assets.scripts + assets.links:
        response = await client.get(url)
        assert response.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert response.mimetype in expected[suffix], url
        assert len(await response.get_data()) > 0


async def test_the_docs_script_uses_the_local_document_and_no_cdn(client: Client) -> None:
    assets = await docs_assets(client)
    own = [url for url in assets.scripts if "swagger-ui-bundle" not in url]
    assert own
    for url in own:
        script = (await (await client.get(url)).get_data(as_text=True)).lower()
        assert "/openapi.json" in script
        for word in CDN_WORDS:
            assert word not in script, (url, word)


async def test_docs_page_has_a_strict_content_security_policy(client: Client) -> None:
    policy = (await client.get("/docs")).headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())

    assert directives["script-src"] == "'self'"
    assert "'self'" in directives["connect-src"]


@pytest.mark.parametrize("name", ["index.html", "../__init__.py", "swagger-ui.js.map", "oauth2"])
async def test_docs_serves_only_its_own_assets(client: Client, name: str) -> None:
    response = await client.get(f"/docs/assets/{name}")
    assert response.status_code == 404


# --- meta-tests over the url map ------------------------------------------------------------


def concrete_path(rule: Rule) -> str:
    """A URL that matches ``rule``, with a fresh UUID for every variable part."""
    return re.sub(r"<[^>]+>", str(uuid.uuid4()), rule.rule)


def items_routes(app: Quart) -> list[tuple[str, Rule]]:
    routes = [
        (method, rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("items.")
        for method in sorted(rule.methods or ())
        if method.lower() in HTTP_METHODS
    ]
    assert len(routes) >= 8  # the six operations plus the two trailing-slash twins
    return routes


async def test_every_items_endpoint_requires_a_bearer_token(app: Quart) -> None:
    client = app.test_client()
    for method, rule in items_routes(app):
        response = await client.open(
            concrete_path(rule), method=method, json={"name": "x", "description": "y"}
        )
        where = f"{method} {rule.rule}"
        assert response.status_code == 401, where
        assert response.headers["WWW-Authenticate"].startswith("Bearer "), where


async def test_every_items_endpoint_declares_its_response_schema(app: Quart) -> None:
    for method, rule in items_routes(app):
        view = app.view_functions[rule.endpoint]
        schemas: dict[int, Any] = getattr(view, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {})
        successes = [status for status in schemas if 200 <= status < 300]
        no_content = getattr(view, NO_CONTENT_ATTRIBUTE, False)
        assert successes or no_content, f"{method} {rule.rule} declares no success response"
        assert 401 in schemas, f"{method} {rule.rule} does not document its 401"
