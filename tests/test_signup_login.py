"""Signing up and logging in: the account rules, the three login encodings, the password grant."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import datetime
from typing import Any

import pytest
from passlib.context import CryptContext
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select
from werkzeug.test import encode_multipart

from service import create_app
from service.accounts.queries import username_key
from service.config import Settings
from service.db.models import User
from tests.helpers import Account, make_settings, sign_up

PASSWORD = "quiet-harbour-lantern-42"
TOKEN_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in", "refresh_expires_in"}
#: A login also hands out a device credential (``tests/test_device_credentials.py``).
LOGIN_FIELDS = TOKEN_FIELDS | {"device_token"}


async def signup(client: Client, username: Any, password: Any = PASSWORD) -> Any:
    return await client.post("/signup", json={"username": username, "password": password})


async def raw_post(client: Client, path: str, username: str, password: str) -> Any:
    """POST JSON as a client would write it: NULs and lone surrogates as ``\\u`` escapes."""
    body = json.dumps({"username": username, "password": password})
    assert "\\u" in body
    return await client.post(path, data=body, headers={"Content-Type": "application/json"})


async def stored_users(app: Quart) -> list[Any]:
    async with app.extensions["service"].db.read() as db:
        return list(await db.all(select(User)))


# --- signup ---------------------------------------------------------------------------------


async def test_signup_creates_the_user(client: Client) -> None:
    response = await signup(client, "Alice")

    assert response.status_code == 201
    body = await response.get_json()
    assert set(body) == {"id", "username", "created_at", "email", "email_verified"}
    assert (body["email"], body["email_verified"]) == (None, False)
    assert body["username"] == "Alice"
    uuid.UUID(body["id"])
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
    assert response.headers["Location"]
    assert "password" not in (await response.get_data(as_text=True))


async def test_signup_location_leads_to_the_account(client: Client) -> None:
    response = await signup(client, "alice")
    tokens = await (
        await client.post("/login", form={"username": "alice", "password": PASSWORD})
    ).get_json()

    account = await client.get(
        response.headers["Location"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )

    assert account.status_code == 200
    assert (await account.get_json()) == (await response.get_json())


@pytest.mark.parametrize("taken", ["alice", "ALICE", "Alice"])
async def test_signup_refuses_a_username_taken_in_any_letter_case(
    app: Quart, client: Client, taken: str
) -> None:
    await signup(client, "alice")

    response = await signup(client, taken, "another-password-entirely")

    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    body = await response.get_json()
    assert body["status"] == 409
    assert len(await stored_users(app)) == 1


async def test_concurrent_signups_of_one_username_create_one_account(
    app: Quart, client: Client
) -> None:
    names = ["alice", "ALICE", "Alice", "aLiCe"] * 2

    responses = await asyncio.gather(*(signup(client, name) for name in names))

    assert sorted(response.status_code for response in responses) == [201] + [409] * 7
    assert len(await stored_users(app)) == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"username": "al", "password": PASSWORD}, id="username-too-short"),
        pytest.param({"username": "a" * 65, "password": PASSWORD}, id="username-too-long"),
        pytest.param({"username": "al ice", "password": PASSWORD}, id="username-space"),
        pytest.param({"username": "alice", "password": "short12"}, id="password-too-short"),
        pytest.param({"username": "alice", "password": "p" * 1025}, id="password-too-long"),
        pytest.param({"username": "alice"}, id="password-missing"),
        pytest.param({"password": PASSWORD}, id="username-missing"),
        pytest.param({}, id="empty-object"),
        pytest.param(
            {"username": "alice", "password": PASSWORD, "is_admin": True}, id="extra-field"
        ),
        pytest.param({"username": 123, "password": PASSWORD}, id="username-number"),
        pytest.param({"username": "alice", "password": 12345678}, id="password-number"),
        pytest.param({"username": ["alice"], "password": PASSWORD}, id="username-list"),
        pytest.param({"username": None, "password": PASSWORD}, id="username-null"),
        pytest.param(["alice", PASSWORD], id="array-body"),
    ],
)
async def test_signup_refuses_invalid_input_with_422(app: Quart, client: Client, body: Any) -> None:
    response = await client.post("/signup", json=body)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = await response.get_json()
    assert problem["errors"]
    assert all(set(error) == {"field", "message"} for error in problem["errors"])
    assert PASSWORD not in (await response.get_data(as_text=True))
    assert await stored_users(app) == []


async def test_signup_names_the_failing_fields(client: Client) -> None:
    response = await client.post("/signup", json={"username": "a", "password": "x"})

    fields = {error["field"] for error in (await response.get_json())["errors"]}
    assert fields == {"username", "password"}


async def test_signup_accepts_a_password_of_1024_characters(client: Client) -> None:
    password = "Long password! " * 68 + "abcd"
    assert len(password) == 1024
    assert (await signup(client, "alice", password)).status_code == 201
    await sign_up(client, "bob", password)


# --- login: encodings and the password grant ------------------------------------------------


def assert_token_response(response: Any, body: dict[str, Any]) -> None:
    assert response.status_code == 200
    assert set(body) == LOGIN_FIELDS
    assert body["token_type"] == "bearer"
    assert isinstance(body["expires_in"], int)
    assert 0 < body["expires_in"] <= body["refresh_expires_in"]
    assert response.headers["Cache-Control"] == "no-store"


async def test_login_with_an_urlencoded_form(client: Client) -> None:
    await signup(client, "alice")

    response = await client.post("/login", form={"username": "alice", "password": PASSWORD})

    assert response.mimetype == "application/json"
    assert_token_response(response, await response.get_json())


async def test_login_with_a_multipart_form(client: Client) -> None:
    await signup(client, "alice")
    boundary, data = encode_multipart({"username": "alice", "password": PASSWORD})

    response = await client.post(
        "/login", data=data, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )

    assert_token_response(response, await response.get_json())


async def test_login_with_json(client: Client) -> None:
    await signup(client, "alice")

    response = await client.post("/login", json={"username": "alice", "password": PASSWORD})

    assert_token_response(response, await response.get_json())


async def test_login_tokens_open_the_protected_routes(client: Client) -> None:
    await signup(client, "alice")
    response = await client.post("/login", form={"username": "alice", "password": PASSWORD})
    token = (await response.get_json())["access_token"]

    me = await client.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert me.status_code == 200
    assert (await me.get_json())["username"] == "alice"


async def test_login_ignores_the_letter_case_of_the_username(client: Client) -> None:
    await signup(client, "Alice")
    response = await client.post("/login", form={"username": "aLICE", "password": PASSWORD})
    assert response.status_code == 200


async def test_login_accepts_the_password_grant_type_and_ignores_scope(client: Client) -> None:
    await signup(client, "alice")

    response = await client.post(
        "/login",
        form={
            "grant_type": "password",
            "username": "alice",
            "password": PASSWORD,
            "scope": "items:read items:write",
            "client_id": "swagger",
        },
    )

    assert_token_response(response, await response.get_json())


@pytest.mark.parametrize("grant_type", ["client_credentials", "authorization_code", "implicit"])
async def test_login_refuses_another_grant_type(client: Client, grant_type: str) -> None:
    await signup(client, "alice")

    response = await client.post(
        "/login", form={"grant_type": grant_type, "username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"] == "unsupported_grant_type"
    assert response.headers["Cache-Control"] == "no-store"


async def test_login_refuses_another_grant_type_sent_as_json(client: Client) -> None:
    response = await client.post("/login", json={"grant_type": "implicit"})
    assert (await response.get_json())["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"username": "alice"}, id="password-missing"),
        pytest.param({"password": PASSWORD}, id="username-missing"),
        pytest.param({}, id="empty"),
    ],
)
async def test_login_with_a_missing_field_is_invalid_request(
    client: Client, form: dict[str, str]
) -> None:
    response = await client.post("/login", form=form)

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


async def test_login_with_a_json_array_is_invalid_request(client: Client) -> None:
    response = await client.post("/login", json=["alice", PASSWORD])
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/login", "/refresh"])
@pytest.mark.parametrize("data", [b'{"username": ', b"", b"\xff"], ids=["cut", "empty", "bytes"])
async def test_malformed_json_at_a_token_endpoint_is_invalid_request(
    client: Client, path: str, data: bytes
) -> None:
    response = await client.post(path, data=data, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"


async def test_unknown_user_and_wrong_password_get_the_identical_answer(client: Client) -> None:
    await signup(client, "alice")

    wrong_password = await client.post(
        "/login", form={"username": "alice", "password": "not-the-password"}
    )
    unknown_user = await client.post(
        "/login", form={"username": "nobody", "password": "not-the-password"}
    )

    assert wrong_password.status_code == unknown_user.status_code == 400
    assert (await wrong_password.get_data()) == (await unknown_user.get_data())
    body = await wrong_password.get_json()
    assert body["error"] == "invalid_grant"
    assert body["detail"]
    for response in (wrong_password, unknown_user):
        assert response.mimetype == "application/problem+json"
        assert response.headers["Cache-Control"] == "no-store"
        assert "WWW-Authenticate" not in response.headers


async def test_a_password_longer_than_72_bytes_is_not_truncated(client: Client) -> None:
    shared = "correct horse battery staple " * 3  # 87 bytes in common
    assert len(shared.encode()) > 72
    await signup(client, "alice", shared + "one")

    other = await client.post("/login", form={"username": "alice", "password": shared + "two"})
    prefix = await client.post("/login", form={"username": "alice", "password": shared})
    right = await client.post("/login", form={"username": "alice", "password": shared + "one"})

    assert other.status_code == 400
    assert prefix.status_code == 400
    assert right.status_code == 200


async def test_a_multibyte_password_longer_than_72_bytes_is_not_truncated(
    client: Client,
) -> None:
    shared = "é" * 42  # 84 bytes
    await signup(client, "alice", shared + "x")
    response = await client.post("/login", form={"username": "alice", "password": shared + "y"})
    assert response.status_code == 400


async def test_login_upgrades_the_hash_when_bcrypt_rounds_rise(
    app: Quart, client: Client, settings: Settings
) -> None:
    account: Account = await sign_up(client, "alice")
    (before,) = await stored_users(app)
    assert ",r=4$" in before.password_hash

    stronger = create_app(make_settings(settings.database_url, bcrypt_rounds=5))
    async with stronger.test_app() as test_app:
        response = await test_app.test_client().post(
            "/login", form={"username": "alice", "password": account.password}
        )
        assert response.status_code == 200

    (after,) = await stored_users(app)
    assert ",r=5$" in after.password_hash
    assert after.password_hash != before.password_hash
    async with stronger.test_app() as test_app:
        again = await test_app.test_client().post(
            "/login", form={"username": "alice", "password": account.password}
        )
    assert again.status_code == 200


async def test_login_keeps_a_stronger_hash_when_bcrypt_rounds_fall(
    app: Quart, client: Client, settings: Settings
) -> None:
    stronger = create_app(make_settings(settings.database_url, bcrypt_rounds=5))
    async with stronger.test_app() as test_app:
        account: Account = await sign_up(test_app.test_client(), "alice")
    (before,) = await stored_users(app)
    assert ",r=5$" in before.password_hash

    response = await client.post("/login", form={"username": "alice", "password": account.password})

    assert response.status_code == 200
    (after,) = await stored_users(app)
    assert after.password_hash == before.password_hash


async def test_a_wrong_password_does_not_touch_the_stored_hash(
    app: Quart, client: Client, settings: Settings
) -> None:
    await sign_up(client, "alice")
    (before,) = await stored_users(app)

    stronger = create_app(make_settings(settings.database_url, bcrypt_rounds=5))
    async with stronger.test_app() as test_app:
        response = await test_app.test_client().post(
            "/login", form={"username": "alice", "password": "wrong-password-here"}
        )
    assert response.status_code == 400

    (after,) = await stored_users(app)
    assert after.password_hash == before.password_hash


async def test_the_password_is_stored_only_as_a_hash(app: Quart, client: Client) -> None:
    await signup(client, "Alice")

    (user,) = await stored_users(app)

    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$bcrypt-sha256$")
    assert user.username_key == username_key("Alice") == "alice"


async def test_password_hashing_and_checking_run_off_the_event_loop(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bcrypt takes ~0.2 s a call at the default cost: on the loop it would stall all requests."""
    threads: dict[str, list[bool]] = {}
    for name in ("hash", "verify", "verify_and_update"):
        original = getattr(CryptContext, name)

        def spy(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            threads.setdefault(_name, []).append(
                threading.current_thread() is threading.main_thread()
            )
            return _original(self, *args)

        monkeypatch.setattr(CryptContext, name, spy)

    await signup(client, "alice")
    await client.post("/login", form={"username": "alice", "password": PASSWORD})
    await client.post("/login", form={"username": "alice", "password": "wrong-password-x"})
    await client.post("/login", form={"username": "nobody", "password": "wrong-password-x"})

    assert set(threads) == {"hash", "verify", "verify_and_update"}
    assert not any(on_main for calls in threads.values() for on_main in calls)


# --- NUL bytes and lone surrogates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("al\x00ice", PASSWORD, id="nul-user"),
        pytest.param("alice", "pass\x00word1", id="nul-password"),
        pytest.param("al\ud800ice", PASSWORD, id="surrogate-user"),
        pytest.param("alice", "pass\ud800word1", id="surrogate-password"),
        pytest.param("alice", "passw\udfffrd1", id="low-surrogate-password"),
    ],
)
async def test_signup_refuses_nul_and_lone_surrogates_with_422(
    app: Quart, client: Client, username: str, password: str
) -> None:
    response = await raw_post(client, "/signup", username, password)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert await stored_users(app) == []


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("al\x00ice", PASSWORD, id="nul-user"),
        pytest.param("alice", "pass\x00word1", id="nul-password"),
        pytest.param("al\ud800ice", PASSWORD, id="surrogate-user"),
        pytest.param("alice", "pass\ud800word1", id="surrogate-password"),
    ],
)
async def test_login_refuses_nul_and_lone_surrogates_as_invalid_request(
    client: Client, username: str, password: str
) -> None:
    await signup(client, "alice")

    response = await raw_post(client, "/login", username, password)

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"username": "al\x00ice", "password": PASSWORD}, id="nul-user"),
        pytest.param({"username": "alice", "password": "pass\x00word1"}, id="nul-password"),
    ],
)
async def test_form_login_refuses_nul_as_invalid_request(
    client: Client, form: dict[str, str]
) -> None:
    await signup(client, "alice")

    response = await client.post("/login", form=form)

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


async def test_form_login_with_invalid_utf8_is_not_a_server_error(client: Client) -> None:
    await signup(client, "alice")

    response = await client.post(
        "/login",
        data=b"username=al%ED%A0%80ice&password=pass%FFword",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400
    assert (await response.get_json())["error"] in {"invalid_request", "invalid_grant"}
