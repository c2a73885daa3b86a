"""The caller's own account: changing the password and deleting the account."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from service.db.models import Item, LoginSession, User
from tests.helpers import Account, sign_up
from tests.session_helpers import (
    another_login,
    assert_access_refused,
    assert_refresh_refused,
    assert_session_alive,
    assert_session_ended,
    bearer,
)

NEW_PASSWORD = "tidal-copper-orchard-7"


async def change_password(
    client: Client, account: Account, current: Any, new: Any = NEW_PASSWORD
) -> Any:
    return await client.post(
        "/me/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(account.access_token),
    )


async def login_status(client: Client, username: str, password: str) -> int:
    response = await client.post("/login", form={"username": username, "password": password})
    return response.status_code


async def count(app: Quart, model: Any, **where: Any) -> int:
    conditions = [getattr(model, name) == value for name, value in where.items()]
    async with app.extensions["service"].db.read() as db:
        found: int = await db.scalar(select(func.count()).select_from(model).where(*conditions))
    return found


# --- password change ------------------------------------------------------------------------


async def test_password_change_replaces_the_password(client: Client, alice: Account) -> None:
    response = await change_password(client, alice, alice.password)

    assert response.status_code == 204
    assert await login_status(client, "alice", alice.password) == 400
    assert await login_status(client, "alice", NEW_PASSWORD) == 200


async def test_password_change_ends_every_other_session_and_keeps_the_calling_one(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)
    laptop = await another_login(client, alice)

    await change_password(client, alice, alice.password)

    await assert_session_ended(client, phone)
    await assert_session_ended(client, laptop)
    await assert_session_alive(client, alice)


async def test_password_change_leaves_other_users_alone(
    client: Client, alice: Account, bob: Account
) -> None:
    await change_password(client, alice, alice.password)

    await assert_session_alive(client, bob)
    assert await login_status(client, "bob", bob.password) == 200


async def test_password_change_with_a_wrong_current_password_is_422_not_401(
    client: Client, alice: Account
) -> None:
    """A 401 would make clients throw away tokens that are still good."""
    phone = await another_login(client, alice)

    response = await change_password(client, alice, "not-my-password-at-all")

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = await response.get_json()
    assert [error["field"] for error in body["errors"]] == ["current_password"]
    assert "not-my-password-at-all" not in await response.get_data(as_text=True)
    await assert_session_alive(client, alice)
    await assert_session_alive(client, phone)
    assert await login_status(client, "alice", alice.password) == 200


@pytest.mark.parametrize(
    ("new_password", "reason"),
    [
        ("short", "at least 8"),
        ("x" * 1025, "at most 1024"),
        ("password123", "common"),
        ("Iloveyou1", "common"),
    ],
)
async def test_password_change_applies_the_password_policy(
    client: Client, alice: Account, new_password: str, reason: str
) -> None:
    response = await change_password(client, alice, alice.password, new_password)

    assert response.status_code == 422
    body = await response.get_json()
    errors = body["errors"]
    assert [error["field"] for error in errors] == ["new_password"]
    assert reason in errors[0]["message"]
    assert reason in body["detail"]  # the top line says what is wrong too
    assert await login_status(client, "alice", alice.password) == 200


async def test_password_change_refuses_the_username_in_any_case(client: Client) -> None:
    account = await sign_up(client, "zephyrine77", "harbour-lantern-quiet")
    phone = await another_login(client, account)

    response = await change_password(client, account, account.password, "ZephYrine77")

    assert response.status_code == 422
    body = await response.get_json()
    assert body["errors"] == [
        {"field": "new_password", "message": "must not be the same as the username"}
    ]
    assert body["detail"] == "The password must not be the same as the username."
    await assert_session_alive(client, phone)
    assert await login_status(client, "zephyrine77", account.password) == 200


@pytest.mark.parametrize(
    "body",
    [
        {"new_password": NEW_PASSWORD},
        {"current_password": "x", "new_password": NEW_PASSWORD, "username": "mallory"},
        {"current_password": "bad\u0000byte", "new_password": NEW_PASSWORD},
    ],
)
async def test_password_change_with_a_malformed_body_is_422(
    client: Client, alice: Account, body: dict[str, str]
) -> None:
    response = await client.post("/me/password", json=body, headers=bearer(alice.access_token))

    assert response.status_code == 422
    assert (await response.get_json())["errors"]
    assert await login_status(client, "alice", alice.password) == 200


async def test_password_change_needs_a_live_session(client: Client, alice: Account) -> None:
    anonymous = await client.post(
        "/me/password", json={"current_password": alice.password, "new_password": NEW_PASSWORD}
    )
    await client.post("/logout", headers=bearer(alice.access_token))
    ended = await change_password(client, alice, alice.password)

    assert anonymous.status_code == 401
    assert ended.status_code == 401
    assert (await ended.get_json())["error"] == "invalid_token"
    assert await login_status(client, "alice", alice.password) == 200


# --- account deletion -----------------------------------------------------------------------


async def test_delete_me_removes_the_user_their_items_and_sessions(
    app: Quart, client: Client, alice: Account, bob: Account
) -> None:
    for name in ("one", "two"):
        await client.post("/items", json={"name": name}, headers=bearer(alice.access_token))
    await client.post("/items", json={"name": "bob's"}, headers=bearer(bob.access_token))
    await another_login(client, alice)

    response = await client.delete("/me", headers=bearer(alice.access_token))

    assert response.status_code == 204
    assert await count(app, User, username="alice") == 0
    assert await count(app, Item) == 1
    assert await count(app, LoginSession) == 1
    listed = await client.get("/items", headers=bearer(bob.access_token))
    assert [item["name"] for item in (await listed.get_json())["items"]] == ["bob's"]


async def test_delete_me_refuses_the_old_tokens_and_password(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)

    await client.delete("/me", headers=bearer(alice.access_token))

    for session in (alice, phone):
        await assert_access_refused(client, session.access_token)
        await assert_refresh_refused(client, session.refresh_token)
    assert await login_status(client, "alice", alice.password) == 400
    again = await client.delete("/me", headers=bearer(alice.access_token))
    assert again.status_code == 401


async def test_delete_me_frees_the_username(client: Client, alice: Account) -> None:
    await client.delete("/me", headers=bearer(alice.access_token))

    again = await sign_up(client, "Alice", "a-brand-new-passphrase")

    assert again.id != alice.id
    me = await client.get("/me", headers=bearer(again.access_token))
    assert (await me.get_json())["username"] == "Alice"
    items = await client.get("/items", headers=bearer(again.access_token))
    assert (await items.get_json())["items"] == []


async def test_delete_me_needs_a_bearer_token(app: Quart, client: Client, alice: Account) -> None:
    response = await client.delete("/me")

    assert response.status_code == 401
    assert await count(app, User) == 1
