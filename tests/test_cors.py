"""CORS as a browser sees it: preflights, real cross-origin requests, and the default of none.

The module's ``settings`` allow two origins; tests of other settings build their own app.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import ValidationError
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service import create_app
from service.config import Settings
from tests.helpers import Account, delete_all_rows, make_settings, sign_up

APP = "https://app.example.com"
ADMIN = "https://admin.example.com:8443"
EVIL = "https://evil.example.com"
REQUESTED_HEADERS = "authorization, content-type, if-match, if-none-match, x-request-id"
EXPOSED = {"etag", "location", "x-request-id", "retry-after"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, cors_origins=f"{APP}, {ADMIN}")


@asynccontextmanager
async def served(database_url: str, **overrides: Any) -> AsyncIterator[Client]:
    app = create_app(make_settings(database_url, **overrides))
    async with app.test_app() as test_app:
        await delete_all_rows(app.extensions["service"])
        yield test_app.test_client()


def preflight(
    client: Client, path: str, origin: str, method: str = "POST", headers: str = REQUESTED_HEADERS
) -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def listed(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def cors_headers(response: Any) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-")
    }


async def test_a_preflight_from_an_allowed_origin_gets_the_allow_headers(client: Client) -> None:
    response = await preflight(client, "/items", APP)

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert {"post", "put", "patch", "delete"} <= listed(
        response.headers["Access-Control-Allow-Methods"]
    )
    assert listed(response.headers["Access-Control-Allow-Headers"]) == listed(REQUESTED_HEADERS)
    assert response.headers["Access-Control-Max-Age"] == "600"
    # A named origin may send the refresh cookie (credentials mode), never a wildcard.
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.headers["Vary"]


async def test_every_allowed_origin_is_answered_with_its_own_name(client: Client) -> None:
    for origin in (APP, ADMIN):
        response = await preflight(client, "/login", origin)
        assert response.headers["Access-Control-Allow-Origin"] == origin


async def test_a_header_outside_the_list_is_not_allowed(client: Client) -> None:
    response = await preflight(client, "/items", APP, headers="authorization, x-api-key")

    assert listed(response.headers["Access-Control-Allow-Headers"]) == {"authorization"}


async def test_a_preflight_from_another_origin_gets_no_cors_headers(client: Client) -> None:
    for origin in (EVIL, f"{APP}.evil.com", "http://app.example.com", "null"):
        response = await preflight(client, "/items", origin)
        assert cors_headers(response) == {}, origin


async def test_no_preflight_reaches_the_bearer_check_or_a_handler(
    app: Quart, client: Client
) -> None:
    """Every route answers a token-less preflight itself: never 401, always the CORS headers."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("docs.") or rule.endpoint == "static":
            continue
        path = re.sub(r"<uuid:\w+>", "0b4a1c9e-0000-4000-8000-000000000000", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = await preflight(client, path, APP, method=method)
            assert response.status_code == 200, f"{method} {path}"
            assert response.headers["Access-Control-Allow-Origin"] == APP, f"{method} {path}"


async def test_a_real_request_from_an_allowed_origin_can_read_the_answer(
    client: Client, alice: Account
) -> None:
    created = await client.post(
        "/items", json={"name": "Book"}, headers=alice.headers | {"Origin": APP}
    )

    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == APP
    assert listed(created.headers["Access-Control-Expose-Headers"]) == EXPOSED
    assert created.headers["Access-Control-Allow-Credentials"] == "true"


async def test_an_error_from_an_allowed_origin_is_readable_too(client: Client) -> None:
    for response in (
        await client.get("/items", headers={"Origin": APP}),
        await client.get("/nowhere", headers={"Origin": APP}),
        await client.post(
            "/login", form={"username": "x", "password": "y"}, headers={"Origin": APP}
        ),
    ):
        assert response.status_code >= 400
        assert response.headers["Access-Control-Allow-Origin"] == APP


async def test_a_page_of_an_allowed_origin_may_send_the_csrf_header(client: Client) -> None:
    response = await preflight(client, "/refresh", APP, headers="content-type, x-requested-with")

    assert listed(response.headers["Access-Control-Allow-Headers"]) == {
        "content-type",
        "x-requested-with",
    }
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


async def test_a_real_request_from_another_origin_gets_no_cors_headers(
    client: Client, alice: Account
) -> None:
    response = await client.get("/items", headers=alice.headers | {"Origin": EVIL})

    assert response.status_code == 200  # the server answers; the browser hides it from EVIL
    assert cors_headers(response) == {}


async def test_by_default_no_origin_is_allowed(database_url: str) -> None:
    async with served(database_url) as client:
        responses = [
            await preflight(client, "/items", APP),
            await preflight(client, "/login", "http://localhost:3000"),
            await client.get("/healthz", headers={"Origin": APP}),
        ]
    for response in responses:
        assert response.status_code == 200  # still not a 401 for the preflight
        assert cors_headers(response) == {}


async def test_a_wildcard_allows_every_origin_without_credentials(database_url: str) -> None:
    async with served(database_url, cors_origins="*") as client:
        response = await preflight(client, "/items", EVIL)

    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_preflights_do_not_spend_the_login_request_budget(database_url: str) -> None:
    async with served(database_url, cors_origins=APP, auth_requests_per_minute=2) as client:
        await sign_up(client, "alice")  # signup and login: one request each on their own limits
        for _ in range(5):
            assert (await preflight(client, "/login", APP)).status_code == 200
        response = await client.post(
            "/login", form={"username": "alice", "password": "s3cret-passw0rd"}
        )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "value",
    ["https://app.example.com/", "app.example.com", "https://app.example.com/path", "ftp://x"],
)
def test_a_value_that_is_not_an_origin_is_refused_at_start_up(value: str) -> None:
    with pytest.raises(ValidationError, match="not an origin"):
        make_settings("sqlite:///unused.db", cors_origins=value)


def test_origins_are_compared_as_browsers_write_them() -> None:
    settings = make_settings(
        "sqlite:///unused.db", cors_origins=" https://App.Example.com , http://[::1]:8080"
    )

    assert settings.cors_origins == ["https://app.example.com", "http://[::1]:8080"]
