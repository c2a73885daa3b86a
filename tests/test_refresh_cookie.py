"""Cookie mode: the refresh token in an ``HttpOnly`` ``__Host-`` cookie for browsers.

``?cookie=true`` at ``/login`` or ``/refresh`` sets the cookie and leaves ``refresh_token`` out
of the body; ``/refresh`` and ``/logout`` spend or end the cookie's token. Every cookie-mode
request must send ``X-Requested-With`` and come from an allowed Origin (or none): the forgery
tests below are what another site's page could send. Most tests use clients without a cookie
jar and send the ``Cookie`` header by hand, so each test says exactly what the browser holds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from tests.helpers import AppFactory, app_factory, sign_up
from tests.test_refresh import bearer, claims, refresh

PASSWORD = "s3cret-passw0rd"
APP = "https://app.example.com"
COOKIE = "__Host-refresh_token"
CSRF = {"X-Requested-With": "fetch"}
ACCESS_FIELDS = {"access_token", "token_type", "expires_in", "refresh_expires_in"}


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    async with app_factory(database_url, {"cors_origins": APP}) as build:
        yield build


@pytest.fixture
async def app(make_app: AppFactory) -> Quart:
    return await make_app()


@pytest.fixture
def client(app: Quart) -> Client:
    return app.test_client(use_cookies=False)


def set_cookies(response: Any) -> dict[str, list[str]]:
    """The response's ``Set-Cookie`` headers by cookie name: value first, then attributes."""
    found: dict[str, list[str]] = {}
    for header in response.headers.getlist("Set-Cookie"):
        name_value, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = name_value.partition("=")
        found[name] = [value, *attributes]
    return found


def with_cookie(token: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}", **headers}


async def cookie_login(client: Client, username: str = "alice", **headers: str) -> Any:
    return await client.post(
        "/login?cookie=true",
        form={"username": username, "password": PASSWORD},
        headers={**CSRF, **headers},
    )


async def signed_up_cookie_login(client: Client) -> tuple[dict[str, Any], str]:
    """Sign alice up, log her in in cookie mode: the body and the cookie's token."""
    await sign_up(client, "alice", PASSWORD)
    response = await cookie_login(client)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json(), set_cookies(response)[COOKIE][0]


# --- setting, spending and clearing the cookie ----------------------------------------------


async def test_a_cookie_login_sets_the_refresh_cookie_and_leaves_it_out_of_the_body(
    client: Client,
) -> None:
    await sign_up(client, "alice", PASSWORD)

    response = await cookie_login(client)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.get_json()
    assert set(body) == ACCESS_FIELDS | {"device_token"}
    cookies = set_cookies(response)
    assert set(cookies) == {COOKIE, "__Host-device"}
    token, *attributes = cookies[COOKIE]
    assert claims(token)["sid"] == claims(body["access_token"])["sid"]
    assert {attribute for attribute in attributes if not attribute.startswith("Expires=")} == {
        "Secure",
        "HttpOnly",
        "Path=/",
        "SameSite=Strict",
        f"Max-Age={body['refresh_expires_in']}",
    }
    assert not any(attribute.startswith("Domain") for attribute in attributes)


async def test_refresh_spends_the_cookie_and_sets_the_next_one(client: Client) -> None:
    _, token = await signed_up_cookie_login(client)

    response = await client.post("/refresh", headers=with_cookie(token, **CSRF))

    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == ACCESS_FIELDS
    successor = set_cookies(response)[COOKIE][0]
    assert successor != token
    assert claims(successor)["sid"] == claims(token)["sid"]
    assert (await client.get("/me", headers=bearer(body["access_token"]))).status_code == 200
    # The cookie's token was spent: presented again (no reuse interval here) it ends the session.
    reused = await client.post("/refresh", headers=with_cookie(token, **CSRF))
    assert reused.status_code == 400
    assert (await reused.get_json())["error"] == "invalid_grant"


async def test_cookie_true_moves_a_body_token_into_the_cookie(client: Client) -> None:
    alice = await sign_up(client, "alice", PASSWORD)

    response = await client.post(
        "/refresh?cookie=true", json={"refresh_token": alice.refresh_token}, headers=CSRF
    )

    assert response.status_code == 200
    assert set(await response.get_json()) == ACCESS_FIELDS
    assert claims(set_cookies(response)[COOKIE][0])["sid"] == claims(alice.refresh_token)["sid"]


async def test_without_cookie_mode_nothing_changes(client: Client) -> None:
    alice = await sign_up(client, "alice", PASSWORD)

    response = await refresh(client, alice.refresh_token)

    assert "refresh_token" in await response.get_json()
    assert COOKIE not in set_cookies(response)


async def test_logout_with_the_cookie_ends_the_session_and_clears_the_cookie(
    client: Client,
) -> None:
    body, token = await signed_up_cookie_login(client)

    response = await client.post("/logout", headers=with_cookie(token, **CSRF))

    assert response.status_code == 204
    value, *attributes = set_cookies(response)[COOKIE]
    assert value == ""
    assert "Max-Age=0" in attributes
    assert (await client.get("/me", headers=bearer(body["access_token"]))).status_code == 401


async def test_a_bearer_logout_clears_a_cookie_it_was_sent(client: Client) -> None:
    body, token = await signed_up_cookie_login(client)

    response = await client.post(
        "/logout", headers={**with_cookie(token), **bearer(body["access_token"])}
    )

    assert response.status_code == 204
    assert set_cookies(response)[COOKIE][0] == ""


async def test_refresh_without_a_token_or_cookie_is_invalid_request(client: Client) -> None:
    response = await client.post("/refresh", headers=CSRF)

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


async def test_a_cookie_value_that_is_not_a_boolean_is_invalid_request(client: Client) -> None:
    alice = await sign_up(client, "alice", PASSWORD)

    response = await client.post(
        "/refresh?cookie=maybe", json={"refresh_token": alice.refresh_token}, headers=CSRF
    )

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


async def test_development_over_plain_http_uses_a_cookie_without_secure(
    make_app: AppFactory,
) -> None:
    development = (await make_app(app_env="development")).test_client(use_cookies=False)
    await sign_up(development, "alice", PASSWORD)

    response = await cookie_login(development)

    assert response.status_code == 200
    cookies = set_cookies(response)
    assert COOKIE not in cookies
    token, *attributes = cookies["refresh_token"]
    assert "Secure" not in attributes
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
    plain = await development.post("/refresh", headers={"Cookie": f"refresh_token={token}", **CSRF})
    assert plain.status_code == 200


# --- cross-site request forgery -------------------------------------------------------------

FORGERIES = {
    "no header": {"Origin": APP},
    "foreign origin": {**CSRF, "Origin": "https://evil.example"},
    "null origin": {**CSRF, "Origin": "null"},
    "no origin, no header": {},
    "lookalike origin": {**CSRF, "Origin": "https://app.example.com.evil.example"},
}


@pytest.mark.parametrize("forged", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_cookie_refresh_is_refused_and_spends_nothing(
    client: Client, forged: dict[str, str]
) -> None:
    _, token = await signed_up_cookie_login(client)

    response = await client.post("/refresh", headers=with_cookie(token, **forged))

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert COOKIE not in set_cookies(response)
    assert (await client.post("/refresh", headers=with_cookie(token, **CSRF))).status_code == 200


async def test_a_forgery_is_a_security_event(
    client: Client, security_events: list[logging.LogRecord]
) -> None:
    _, token = await signed_up_cookie_login(client)

    await client.post("/refresh", headers=with_cookie(token, Origin="https://evil.example"))
    await client.post("/refresh", headers=with_cookie(token, **CSRF, Origin="null"))

    refused = [
        record for record in security_events if getattr(record, "event", None) == "csrf_refused"
    ]
    assert [getattr(record, "reason", None) for record in refused] == [
        "no custom header",
        "origin not allowed",
    ]
    assert all(record.levelno == logging.WARNING for record in refused)


@pytest.mark.parametrize("forged", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_cookie_logout_is_refused_and_ends_nothing(
    client: Client, forged: dict[str, str]
) -> None:
    body, token = await signed_up_cookie_login(client)

    response = await client.post("/logout", headers=with_cookie(token, **forged))

    assert response.status_code == 403
    assert (await client.get("/me", headers=bearer(body["access_token"]))).status_code == 200


@pytest.mark.parametrize("forged", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_cookie_login_is_refused(client: Client, forged: dict[str, str]) -> None:
    await sign_up(client, "alice", PASSWORD)

    response = await client.post(
        "/login?cookie=true", form={"username": "alice", "password": PASSWORD}, headers=forged
    )

    assert response.status_code == 403
    assert set_cookies(response) == {}


@pytest.mark.parametrize("origin", [APP, "http://localhost", "https://localhost"])
async def test_a_cookie_request_from_an_allowed_origin_passes(client: Client, origin: str) -> None:
    """``CORS_ORIGINS`` and this service's own origin (the test client's host is ``localhost``)."""
    _, token = await signed_up_cookie_login(client)

    response = await client.post("/refresh", headers=with_cookie(token, **CSRF, Origin=origin))

    assert response.status_code == 200


async def test_a_wildcard_cors_setting_allows_no_other_origin(make_app: AppFactory) -> None:
    wildcard = (await make_app(cors_origins="*")).test_client(use_cookies=False)
    _, token = await signed_up_cookie_login(wildcard)

    response = await wildcard.post("/refresh", headers=with_cookie(token, **CSRF, Origin=APP))

    assert response.status_code == 403


# --- a real cookie jar ----------------------------------------------------------------------


async def test_httpx_cookie_jar_keeps_spends_and_drops_the_refresh_cookie(app: Quart) -> None:
    """httpx keeps the ``Secure`` ``__Host-`` cookie for an https origin, sends it back, and
    drops it when logout clears it, as a browser does."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="https://localhost", headers=CSRF
    ) as browser:
        signup = await browser.post("/signup", json={"username": "alice", "password": PASSWORD})
        assert signup.status_code == 201
        login = await browser.post(
            "/login?cookie=true", data={"username": "alice", "password": PASSWORD}
        )
        assert login.status_code == 200
        first = browser.cookies[COOKIE]

        renewed = await browser.post("/refresh")
        assert renewed.status_code == 200, renewed.text
        assert browser.cookies[COOKIE] != first
        assert "refresh_token" not in renewed.json()

        assert (await browser.post("/logout")).status_code == 204
        assert COOKIE not in browser.cookies
        gone = await browser.get("/me", headers=bearer(renewed.json()["access_token"]))
        assert gone.status_code == 401
