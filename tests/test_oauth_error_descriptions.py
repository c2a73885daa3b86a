"""Every answer with an OAuth 2.0 ``error`` code also has an ``error_description`` (RFC 6749
section 5.2) in the characters RFC 6749 allows, beside the unchanged problem+json members.

Each case below provokes one OAuth error at one endpoint that answers with such codes: the
token endpoint (``/login``, ``/refresh``), the second login step, revocation, introspection and
bearer-protected routes. Authlib's client reading the description is in
``tests/test_oauth_clients.py``.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from service.config import Settings
from service.security.oauth_errors import ALLOWED, error_description
from tests.helpers import Account, make_settings

CLIENT_ID = "resource-server"
CLIENT_SECRET = "rs-secret-0123456789-abcdefghij-KLMNOP"
WRONG_BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:wrong".encode()).decode()
RIGHT_BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
BAD_BEARER = {"Authorization": "Bearer not-a-token"}

#: Requests that provoke each OAuth error code at each endpoint that answers with them:
#: method, path, request keywords, status, error.
CASES = [
    pytest.param(
        (
            "POST",
            "/login",
            {"form": {"username": "alice", "password": "nope-nope"}},
            400,
            "invalid_grant",
        ),
        id="wrong password",
    ),
    pytest.param(
        (
            "POST",
            "/login",
            {"form": {"grant_type": "client_credentials"}},
            400,
            "unsupported_grant_type",
        ),
        id="unknown grant",
    ),
    pytest.param(
        ("POST", "/login", {"form": {"username": "alice"}}, 400, "invalid_request"),
        id="no password",
    ),
    pytest.param(
        (
            "POST",
            "/login",
            {"data": "{", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_request",
        ),
        id="not JSON",
    ),
    pytest.param(
        (
            "POST",
            "/login",
            {"form": {"grant_type": "refresh_token", "refresh_token": "x.y.z"}},
            400,
            "invalid_grant",
        ),
        id="bad refresh grant",
    ),
    pytest.param(
        ("POST", "/refresh", {"json": {"refresh_token": "x.y.z"}}, 400, "invalid_grant"),
        id="bad refresh token",
    ),
    pytest.param(
        ("POST", "/refresh", {"json": {"grant_type": "password"}}, 400, "unsupported_grant_type"),
        id="password at refresh",
    ),
    pytest.param(
        ("POST", "/refresh", {"json": {}}, 400, "invalid_request"), id="nothing to refresh"
    ),
    pytest.param(
        (
            "POST",
            "/login/mfa",
            {"json": {"mfa_token": "x.y.z", "code": "123456"}},
            400,
            "invalid_grant",
        ),
        id="bad mfa_token",
    ),
    pytest.param(
        ("POST", "/login/mfa", {"json": {"mfa_token": "x.y.z"}}, 400, "invalid_request"),
        id="no code",
    ),
    pytest.param(("POST", "/revoke", {"form": {}}, 400, "invalid_request"), id="revoke nothing"),
    pytest.param(
        ("POST", "/introspect", {"form": {"token": "x"}}, 401, "invalid_client"), id="no client"
    ),
    pytest.param(
        (
            "POST",
            "/introspect",
            {"form": {"token": "x"}, "headers": {"Authorization": WRONG_BASIC}},
            401,
            "invalid_client",
        ),
        id="wrong secret",
    ),
    pytest.param(
        (
            "POST",
            "/introspect",
            {"form": {}, "headers": {"Authorization": RIGHT_BASIC}},
            400,
            "invalid_request",
        ),
        id="introspect nothing",
    ),
    pytest.param(
        ("GET", "/me", {"headers": BAD_BEARER}, 401, "invalid_token"), id="bad bearer at /me"
    ),
    pytest.param(
        ("GET", "/items", {"headers": BAD_BEARER}, 401, "invalid_token"), id="bad bearer at /items"
    ),
    pytest.param(
        ("POST", "/logout", {"headers": BAD_BEARER}, 401, "invalid_token"),
        id="bad bearer at /logout",
    ),
    pytest.param(
        ("GET", "/admin/users", {"headers": BAD_BEARER}, 401, "invalid_token"),
        id="bad bearer at /admin",
    ),
]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, introspection_clients=f"{CLIENT_ID}:{CLIENT_SECRET}")


@pytest.mark.parametrize("case", CASES)
async def test_every_oauth_error_has_a_description(
    client: Client, alice: Account, case: tuple[str, str, dict[str, Any], int, str]
) -> None:
    method, path, request_, status, error = case
    response = await client.open(path, method=method, **request_)

    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = await response.get_json()
    assert body["error"] == error
    assert ALLOWED.fullmatch(body["error_description"]), body["error_description"]
    # The problem+json members are kept as they were; the description says the same.
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert body["error_description"] == body["detail"]


async def test_a_401_without_a_token_has_no_error_and_no_description(client: Client) -> None:
    """RFC 6750 section 3.1: no error code when the request carried no credentials."""
    body = await (await client.get("/me")).get_json()
    assert "error" not in body
    assert "error_description" not in body


async def test_other_errors_have_no_description(client: Client) -> None:
    body = await (await client.get("/no-such-route")).get_json()
    assert "error_description" not in body


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("Invalid username or password.", "Invalid username or password."),
        ('Send "token" or C:\\path.', "Send 'token' or C:/path."),
        ("Caf\u00e9 \u2014 \u201cquoted\u201d \u2026", "Cafe - 'quoted' ..."),
        ("two\nlines\tand  spaces", "two lines and spaces"),
        ("emoji \U0001f600 and \x00 NUL", "emoji ? and ? NUL"),
        ("\u00a0\n", "invalid_grant"),
    ],
)
def test_a_description_keeps_to_the_rfc_6749_alphabet(text: str, description: str) -> None:
    assert error_description(text, fallback="invalid_grant") == description
    assert ALLOWED.fullmatch(description)
