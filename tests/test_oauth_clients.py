"""Third-party OAuth 2.0 clients, unmodified, against a real server.

Authlib's ``OAuth2Client`` (as its requests integration, ``OAuth2Session``) and
requests-oauthlib's ``OAuth2Session`` log in with the password grant at the token endpoint
``/login``, refresh with ``grant_type=refresh_token`` (RFC 6749 section 6) and call the API
with the bearer token. The server is this module's own, with the shortest access-token
lifetime the settings allow (30 s), so that Authlib's automatic refresh, which renews a token
within its ``leeway`` (60 s by default) of expiry, renews every token before it is used.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from harness.live_server import LiveServer, start_live_server
from tests.helpers import BACKENDS, empty_database

PASSWORD = "correct-horse-battery"
ACCESS_TOKEN_TTL = 30


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp(f"oauth-{request.param}")
    with (
        empty_database(request.param, directory) as url,
        start_live_server(url, directory, ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL)) as live,
    ):
        yield live


@pytest.fixture
def username(server: LiveServer) -> str:
    name = f"oauth-{uuid.uuid4().hex[:12]}"
    with server.client() as http:
        signup = http.post("/signup", json={"username": name, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
    return name


def spent(server: LiveServer, refresh_token: str) -> bool:
    """Whether the server refuses ``refresh_token`` as spent (it ends the session too)."""
    with httpx.Client(base_url=server.base_url) as http:
        response = http.post("/refresh", json={"refresh_token": refresh_token})
        return response.status_code == 400 and response.json()["error"] == "invalid_grant"


# --- Authlib ----------------------------------------------------------------------------------


def test_authlib_logs_in_refreshes_and_calls_the_api(server: LiveServer, username: str) -> None:
    token_url = f"{server.base_url}/login"
    # A leeway below the lifetime: no automatic refresh gets between these steps.
    with AuthlibSession(client_id="cli", token_endpoint=token_url, leeway=5) as client:
        token = client.fetch_token(token_url, username=username, password=PASSWORD)

        assert token["token_type"] == "bearer"
        assert token["expires_in"] == ACCESS_TOKEN_TTL
        me = client.get(f"{server.base_url}/me")
        assert me.status_code == 200
        assert me.json()["username"] == username

        renewed = client.refresh_token(token_url)

        assert renewed["refresh_token"] != token["refresh_token"]
        assert renewed["access_token"] != token["access_token"]
        assert client.get(f"{server.base_url}/me").status_code == 200


def test_authlib_refreshes_at_refresh_too(server: LiveServer, username: str) -> None:
    token_url = f"{server.base_url}/login"
    with AuthlibSession(client_id="cli", leeway=5) as client:
        token = client.fetch_token(token_url, username=username, password=PASSWORD)

        renewed = client.refresh_token(f"{server.base_url}/refresh")

        assert renewed["refresh_token"] != token["refresh_token"]
        assert client.get(f"{server.base_url}/me").status_code == 200


def test_authlib_refreshes_an_expiring_access_token_by_itself(
    server: LiveServer, username: str
) -> None:
    token_url = f"{server.base_url}/login"
    updates: list[dict[str, Any]] = []

    def update_token(token: dict[str, Any], refresh_token: str | None = None, **_: Any) -> None:
        updates.append({"token": dict(token), "replaces": refresh_token})

    with AuthlibSession(
        client_id="cli", token_endpoint=token_url, update_token=update_token
    ) as client:
        first = client.fetch_token(token_url, username=username, password=PASSWORD)
        assert client.token.is_expired()  # 30 s left is within Authlib's 60 s leeway

        for _ in range(3):
            me = client.get(f"{server.base_url}/me")
            assert me.status_code == 200, me.text

    # Each call renewed the token first, each time spending the newest refresh token.
    assert len(updates) == 3
    assert updates[0]["replaces"] == first["refresh_token"]
    for earlier, later in itertools.pairwise(updates):
        assert later["replaces"] == earlier["token"]["refresh_token"]
    assert len({update["token"]["access_token"] for update in updates}) == 3
    # The first refresh token is three rotations back: the server refuses it.
    assert spent(server, first["refresh_token"])


def test_authlib_shows_the_servers_error_description(server: LiveServer, username: str) -> None:
    """RFC 6749 section 5.2: the client's error names the code and says what went wrong."""
    token_url = f"{server.base_url}/login"
    with AuthlibSession(client_id="cli", leeway=5) as client:
        with pytest.raises(OAuthError) as wrong_password:
            client.fetch_token(token_url, username=username, password="wrong-horse-battery")
        with pytest.raises(OAuthError) as dead_refresh:
            client.refresh_token(token_url, refresh_token="not.a.token")
        with pytest.raises(OAuthError) as other_grant:
            client.fetch_token(token_url, grant_type="client_credentials")

    assert str(wrong_password.value) == "invalid_grant: Invalid username or password."
    assert dead_refresh.value.error == "invalid_grant"
    assert dead_refresh.value.description == "The refresh token is invalid, expired or revoked."
    assert other_grant.value.error == "unsupported_grant_type"
    assert other_grant.value.description.startswith("Only grant_type=password")


# --- requests-oauthlib ----------------------------------------------------------------------


@pytest.fixture
def insecure_transport_for_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses plain-HTTP token endpoints unless told it is a local test server."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.mark.usefixtures("insecure_transport_for_the_local_server")
@pytest.mark.parametrize("refresh_path", ["/login", "/refresh"])
def test_requests_oauthlib_logs_in_refreshes_and_calls_the_api(
    server: LiveServer, username: str, refresh_path: str
) -> None:
    token_url = f"{server.base_url}/login"
    with OAuth2Session(client=LegacyApplicationClient(client_id="cli")) as session:
        token = session.fetch_token(token_url, username=username, password=PASSWORD)

        assert token["token_type"] == "bearer"
        assert session.get(f"{server.base_url}/me").json()["username"] == username

        renewed = session.refresh_token(f"{server.base_url}{refresh_path}")

        assert renewed["refresh_token"] != token["refresh_token"]
        assert session.get(f"{server.base_url}/items").status_code == 200
