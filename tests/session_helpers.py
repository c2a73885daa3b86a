"""Small client-side helpers for the session and account tests: more logins, token checks."""

from __future__ import annotations

from typing import Any

from quart.typing import TestClientProtocol as Client

from tests.helpers import Account


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def another_login(
    client: Client, account: Account, user_agent: str = "test-client/1.0"
) -> Account:
    """A second (third...) session of the same user, as another device would open it."""
    response = await client.post(
        "/login",
        form={"username": account.username, "password": account.password},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    return account.with_tokens(await response.get_json())


async def refresh(client: Client, refresh_token: str) -> Any:
    return await client.post("/refresh", json={"refresh_token": refresh_token})


async def assert_access_refused(client: Client, access_token: str) -> None:
    """The token is refused at once on every protected route: 401 ``invalid_token``."""
    for path in ("/me", "/items", "/sessions"):
        response = await client.get(path, headers=bearer(access_token))
        assert response.status_code == 401, path
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert response.mimetype == "application/problem+json"
        assert (await response.get_json())["error"] == "invalid_token"


async def assert_access_works(client: Client, access_token: str) -> None:
    for path in ("/me", "/items", "/sessions"):
        response = await client.get(path, headers=bearer(access_token))
        assert response.status_code == 200, path


async def assert_refresh_refused(client: Client, refresh_token: str) -> None:
    response = await refresh(client, refresh_token)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_grant"


async def assert_session_alive(client: Client, account: Account) -> Account:
    """The session's access token works and its refresh token rotates; the rotated account."""
    await assert_access_works(client, account.access_token)
    response = await refresh(client, account.refresh_token)
    assert response.status_code == 200
    return account.with_tokens(await response.get_json())


async def assert_session_ended(client: Client, account: Account) -> None:
    await assert_access_refused(client, account.access_token)
    await assert_refresh_refused(client, account.refresh_token)


async def live_session_ids(client: Client, account: Account) -> list[str]:
    response = await client.get("/sessions", headers=bearer(account.access_token))
    assert response.status_code == 200
    return [session["id"] for session in (await response.get_json())["sessions"]]
