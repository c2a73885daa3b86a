"""The admin API as admins and everyone else meet it: who gets in, what each action does.

Every rule is attacked: anonymous callers, ordinary users, demoted and disabled admins with
tokens that are still valid, self-lockout, bad input. Admins are made the way an operator
makes them, with the data function behind ``service create-user --admin``/``set-role``.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.accounts.flows import log_in
from service.admin import actions
from service.errors import InvalidGrant
from service.security.roles import Role
from service.services import services
from service.sessions.queries import select_live_sessions
from service.sessions.rotation import start_session
from service.sessions.rules import ClientInfo
from tests.helpers import Account, sign_up
from tests.session_helpers import (
    another_login,
    assert_access_refused,
    assert_access_works,
    assert_refresh_refused,
    bearer,
)

OPERATOR = actions.Actor(name="test-operator")
#: One request of every admin route; ``{id}`` is replaced by a target user's id.
ADMIN_ROUTES = [
    ("GET", "/admin/users", None),
    ("GET", "/admin/users/{id}", None),
    ("PATCH", "/admin/users/{id}", {"is_active": False}),
    ("DELETE", "/admin/users/{id}", None),
    ("GET", "/admin/users/{id}/sessions", None),
    ("DELETE", "/admin/users/{id}/sessions", None),
]


async def make_admin(app: Quart, account: Account) -> Account:
    await actions.change_user(services(app), OPERATOR, uuid.UUID(account.id), role=Role.ADMIN)
    return account


@pytest.fixture
async def root(app: Quart, client: Client) -> Account:
    """An admin, logged in."""
    return await make_admin(app, await sign_up(client, "root"))


@pytest.fixture
def events(
    app: Quart, security_events: list[logging.LogRecord]
) -> Iterator[list[logging.LogRecord]]:
    """The security events of the test, INFO ones included (tests log WARNING and up)."""
    logger = logging.getLogger("service")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield security_events
    finally:
        logger.setLevel(level)


def claims(access_token: str) -> dict[str, Any]:
    payload = access_token.split(".")[1]
    found: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return found


async def send(client: Client, method: str, path: str, token: str, body: Any = None) -> Any:
    return await client.open(path, method=method, headers=bearer(token), json=body)


def admin_actions(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [vars(record) for record in records if getattr(record, "event", "") == "admin_action"]


# Who gets in


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_anonymous_callers_get_401_on_every_admin_route(
    client: Client, alice: Account, method: str, path: str, body: Any
) -> None:
    response = await client.open(path.format(id=alice.id), method=method, json=body)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="service"'
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_ordinary_users_get_403_on_every_admin_route_and_change_nothing(  # noqa: PLR0917
    client: Client,
    alice: Account,
    bob: Account,
    method: str,
    path: str,
    body: Any,
    security_events: list[logging.LogRecord],
) -> None:
    response = await send(client, method, path.format(id=bob.id), alice.access_token, body)

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["status"] == 403
    await assert_access_works(client, bob.access_token)
    denied = [r for r in security_events if getattr(r, "event", "") == "admin_access_denied"]
    assert [r.user_id for r in denied] == [alice.id]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/admin", "/admin/", "/admin/nothing", "/admin/users/x/y"])
async def test_paths_below_admin_that_no_route_has_tell_a_non_admin_nothing(
    client: Client, alice: Account, path: str
) -> None:
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers=alice.headers)).status_code == 403


async def test_a_forged_role_claim_gives_no_power(
    app: Quart, client: Client, alice: Account
) -> None:
    """The role comes from the database: a token that says ``admin`` proves nothing."""
    principal = claims(alice.access_token)
    forged = services(app).tokens.issue(
        "at+jwt",
        user_id=uuid.UUID(principal["sub"]),
        session_id=uuid.UUID(principal["sid"]),
        ttl=60,
        not_after=principal["exp"],
        role="admin",
    )

    response = await client.get("/admin/users", headers=bearer(forged.value))

    assert response.status_code == 403


async def test_a_demoted_admin_loses_power_at_the_next_request(
    app: Quart, client: Client, root: Account, alice: Account
) -> None:
    await make_admin(app, alice)
    assert (await client.get("/admin/users", headers=alice.headers)).status_code == 200

    demote = {"role": "user"}
    response = await send(client, "PATCH", f"/admin/users/{alice.id}", root.access_token, demote)
    assert response.status_code == 200

    assert (await client.get("/admin/users", headers=alice.headers)).status_code == 403
    await assert_access_works(client, alice.access_token)  # still a user


async def test_the_access_token_carries_the_role_as_of_its_issue(
    app: Quart, client: Client, alice: Account
) -> None:
    assert claims(alice.access_token)["role"] == "user"
    await make_admin(app, alice)

    refreshed = await client.post("/refresh", json={"refresh_token": alice.refresh_token})

    assert claims((await refreshed.get_json())["access_token"])["role"] == "admin"


# Listing and search


async def test_the_list_pages_through_every_account_newest_first(
    client: Client, root: Account
) -> None:
    for n in range(4):
        await client.post("/signup", json={"username": f"user{n}", "password": "s3cret-passw0rd"})
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/admin/users", headers=root.headers, query_string=query)
        assert response.status_code == 200
        page = await response.get_json()
        assert len(page["users"]) <= 2
        seen.extend(page["users"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [user["username"] for user in seen] == ["user3", "user2", "user1", "user0", "root"]
    assert set(seen[0]) == {
        "id",
        "username",
        "email",
        "email_verified",
        "role",
        "is_active",
        "created_at",
    }
    assert seen[-1]["role"] == "admin"
    assert all(user["is_active"] for user in seen)


async def test_search_matches_the_start_of_the_username_in_any_letter_case(
    client: Client, root: Account
) -> None:
    for name in ("Alice", "alina", "bob_al", "al_y"):
        await client.post("/signup", json={"username": name, "password": "s3cret-passw0rd"})

    async def search(q: str) -> list[str]:
        response = await client.get("/admin/users", headers=root.headers, query_string={"q": q})
        assert response.status_code == 200
        return sorted(user["username"] for user in (await response.get_json())["users"])

    assert await search("AL") == ["Alice", "al_y", "alina"]
    assert await search("ali") == ["Alice", "alina"]
    # LIKE's wildcards are plain characters in a search (no username has a %).
    assert await search("al%") == []
    assert await search("al_") == ["al_y"]
    assert await search("zzz") == []


async def test_search_matches_the_start_of_the_email_address_and_admins_see_it(
    client: Client, root: Account
) -> None:
    for name, email in (("carol", "Carol.Smith@Example.com"), ("dave", "dave@example.org")):
        body = {"username": name, "password": "s3cret-passw0rd", "email": email}
        assert (await client.post("/signup", json=body)).status_code == 201

    async def search(q: str) -> list[tuple[str, str | None, bool]]:
        response = await client.get("/admin/users", headers=root.headers, query_string={"q": q})
        assert response.status_code == 200
        users = (await response.get_json())["users"]
        return sorted((u["username"], u["email"], u["email_verified"]) for u in users)

    assert await search("CAROL.s") == [("carol", "Carol.Smith@example.com", False)]
    assert await search("dave@") == [("dave", "dave@example.org", False)]
    assert await search("example") == []  # a prefix, not a substring


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "x"},
        {"cursor": "not-a-cursor"},
        {"q": ""},
        {"q": "a" * 65},
        {"q": "a\x00"},
    ],
)
async def test_bad_list_parameters_are_422(
    client: Client, root: Account, query: dict[str, str]
) -> None:
    response = await client.get("/admin/users", headers=root.headers, query_string=query)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


async def test_reading_one_account_shows_no_password_hash(
    client: Client, root: Account, alice: Account
) -> None:
    response = await client.get(f"/admin/users/{alice.id}", headers=root.headers)

    assert response.status_code == 200
    body = await response.get_json()
    assert body["username"] == "alice"
    assert body["role"] == "user"
    assert "hash" not in json.dumps(body)
    assert "$" not in json.dumps(body)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES[1:])
async def test_an_unknown_or_malformed_user_id_is_404(
    client: Client, root: Account, method: str, path: str, body: Any
) -> None:
    for user_id in (uuid.uuid4(), "not-a-uuid"):
        response = await send(client, method, path.format(id=user_id), root.access_token, body)
        assert response.status_code == 404, user_id
        assert response.mimetype == "application/problem+json"


# Disable and enable


async def test_disabling_ends_every_session_and_login_fails_like_a_wrong_password(
    app: Quart, client: Client, root: Account, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = await another_login(client, alice)

    response = await send(
        client, "PATCH", f"/admin/users/{alice.id}", root.access_token, {"is_active": False}
    )

    assert response.status_code == 200
    assert (await response.get_json())["is_active"] is False
    for session in (alice, second):
        await assert_access_refused(client, session.access_token)
        await assert_refresh_refused(client, session.refresh_token)

    # The password is checked in full, then refused with the answer of a wrong one.
    hasher = services(app).passwords
    checks: list[str] = []
    real_verify = hasher.verify

    async def counting_verify(password: str, stored_hash: str) -> Any:
        checks.append(password)
        return await real_verify(password, stored_hash)

    monkeypatch.setattr(hasher, "verify", counting_verify)
    right = await client.post("/login", form={"username": "alice", "password": alice.password})
    wrong = await client.post("/login", form={"username": "alice", "password": "wrong-passw0rd"})

    assert checks == [alice.password, "wrong-passw0rd"]
    assert right.status_code == wrong.status_code == 400
    assert await right.get_json() == await wrong.get_json()
    assert dict(right.headers).keys() - {"X-Request-ID"} == dict(wrong.headers).keys() - {
        "X-Request-ID"
    }


async def test_enabling_lets_the_account_log_in_again(
    client: Client, root: Account, alice: Account
) -> None:
    path = f"/admin/users/{alice.id}"
    await send(client, "PATCH", path, root.access_token, {"is_active": False})

    response = await send(client, "PATCH", path, root.access_token, {"is_active": True})

    assert response.status_code == 200
    assert (await response.get_json())["is_active"] is True
    login = await client.post("/login", form={"username": "alice", "password": alice.password})
    assert login.status_code == 200
    await assert_access_works(client, (await login.get_json())["access_token"])
    await assert_access_refused(client, alice.access_token)  # the old sessions stay ended


async def test_an_admin_can_disable_another_admin(
    app: Quart, client: Client, root: Account, alice: Account
) -> None:
    await make_admin(app, alice)

    response = await send(
        client, "PATCH", f"/admin/users/{alice.id}", root.access_token, {"is_active": False}
    )

    assert response.status_code == 200
    assert (await client.get("/admin/users", headers=alice.headers)).status_code == 401


async def test_a_login_that_races_with_a_disable_gets_no_session(
    app: Quart, client: Client, alice: Account
) -> None:
    """The password was right, then the account was disabled before the session started."""
    service = services(app)
    user = await log_in(
        service, "alice", alice.password, address="192.0.2.1", device_credential=None
    )
    await actions.change_user(service, OPERATOR, user.id, is_active=False)

    with pytest.raises(InvalidGrant):
        await start_session(service, user.id, ClientInfo(None, None))
    async with service.db.read() as db:
        assert await select_live_sessions(db, user.id) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"is_active": None},
        {"role": None},
        {"role": "root"},
        {"is_active": "no"},
        {"is_active": 0},
        {"is_active": False, "username": "mallory"},
        [],
    ],
)
async def test_bad_changes_are_422_and_change_nothing(
    client: Client, root: Account, alice: Account, body: Any
) -> None:
    response = await send(client, "PATCH", f"/admin/users/{alice.id}", root.access_token, body)

    if body == {}:
        assert response.status_code == 200  # nothing asked, nothing changed
    else:
        assert response.status_code == 422
        assert response.mimetype == "application/problem+json"
    await assert_access_works(client, alice.access_token)
    read = await client.get(f"/admin/users/{alice.id}", headers=root.headers)
    assert await read.get_json() == {**(await read.get_json()), "role": "user", "is_active": True}


# An admin cannot lock themselves out by accident


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "", {"is_active": False}),
        ("PATCH", "", {"role": "user"}),
        ("PATCH", "", {"is_active": True, "role": "user"}),
        ("DELETE", "", None),
        ("DELETE", "/sessions", None),
    ],
)
async def test_an_admin_cannot_disable_demote_or_delete_themselves(
    client: Client, root: Account, method: str, suffix: str, body: Any
) -> None:
    path = f"/admin/users/{root.id}{suffix}"

    response = await send(client, method, path, root.access_token, body)

    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    still = await client.get(f"/admin/users/{root.id}", headers=root.headers)
    assert still.status_code == 200
    assert (await still.get_json())["role"] == "admin"


async def test_an_admin_may_confirm_their_own_role_and_state(client: Client, root: Account) -> None:
    body = {"is_active": True, "role": "admin"}

    response = await send(client, "PATCH", f"/admin/users/{root.id}", root.access_token, body)

    assert response.status_code == 200


# Delete, sessions


async def test_deleting_removes_the_account_its_items_and_sessions(
    client: Client, root: Account, alice: Account
) -> None:
    await client.post("/items", json={"name": "Book"}, headers=alice.headers)

    response = await client.delete(f"/admin/users/{alice.id}", headers=root.headers)

    assert response.status_code == 204
    await assert_access_refused(client, alice.access_token)
    assert (await client.get(f"/admin/users/{alice.id}", headers=root.headers)).status_code == 404
    again = await sign_up(client, "alice")  # the username is free
    assert (await (await client.get("/items", headers=again.headers)).get_json())["items"] == []


async def test_an_admin_lists_and_ends_the_sessions_of_an_account(
    client: Client, root: Account, alice: Account
) -> None:
    second = await another_login(client, alice, user_agent="phone/2.0")
    path = f"/admin/users/{alice.id}/sessions"

    listed = await client.get(path, headers=root.headers)

    assert listed.status_code == 200
    found = (await listed.get_json())["sessions"]
    assert [s["user_agent"] for s in found] == ["phone/2.0", "Quart"]
    assert {claims(t)["sid"] for t in (alice.access_token, second.access_token)} == {
        s["id"] for s in found
    }

    assert (await client.delete(path, headers=root.headers)).status_code == 204

    for session in (alice, second):
        await assert_access_refused(client, session.access_token)
    assert (await (await client.get(path, headers=root.headers)).get_json())["sessions"] == []
    login = await client.post("/login", form={"username": "alice", "password": alice.password})
    assert login.status_code == 200  # logged out, not disabled


# Security events


async def test_every_admin_action_is_a_security_event_naming_the_admin(
    client: Client, root: Account, alice: Account, events: list[logging.LogRecord]
) -> None:
    path = f"/admin/users/{alice.id}"
    await send(client, "PATCH", path, root.access_token, {"is_active": False})
    await send(client, "PATCH", path, root.access_token, {"is_active": True, "role": "admin"})
    await client.delete(f"{path}/sessions", headers=root.headers)
    await client.delete(path, headers=root.headers)

    found = admin_actions(events)

    assert [event["action"] for event in found] == [
        "disable",
        "enable",
        "set_role",
        "end_sessions",
        "delete",
    ]
    for event in found:
        assert event["actor"] == "root"
        assert event["actor_id"] == root.id
        assert event["target_user_id"] == alice.id
    assert found[2]["role"] == "admin"
    revoked = [vars(r) for r in events if getattr(r, "event", "") == "session_revoked"]
    assert [(r["user_id"], r["how"]) for r in revoked] == [(alice.id, "admin")]


# The document


async def test_every_admin_operation_is_documented_with_its_errors(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    found = {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        if path.startswith("/admin")
        for method, operation in item.items()
    }

    assert set(found) == {
        ("GET", "/admin/users"),
        ("GET", "/admin/users/{user_id}"),
        ("PATCH", "/admin/users/{user_id}"),
        ("DELETE", "/admin/users/{user_id}"),
        ("GET", "/admin/users/{user_id}/sessions"),
        ("DELETE", "/admin/users/{user_id}/sessions"),
    }
    for (method, path), operation in found.items():
        assert operation["tags"] == ["admin"], (method, path)
        assert operation["summary"], (method, path)
        assert {"bearerAuth": []} in operation["security"], (method, path)
        assert {"401", "403"} <= set(operation["responses"]), (method, path)
        if "{user_id}" in path:
            assert "404" in operation["responses"], (method, path)
    for self_guarded in ("PATCH", "DELETE"):
        assert "409" in found[(self_guarded, "/admin/users/{user_id}")]["responses"]
