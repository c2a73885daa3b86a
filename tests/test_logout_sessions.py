"""Logging out (three scopes, two ways to name the session) and managing one's sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from quart.typing import TestClientProtocol as Client

from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP, VerifiedToken
from service.sessions.rules import NewSession, proves_live_session
from tests.helpers import Account
from tests.session_helpers import (
    another_login,
    assert_session_alive,
    assert_session_ended,
    bearer,
    live_session_ids,
    refresh,
)

# --- the rule for acting on other sessions -------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USER = uuid.uuid4()


def a_session(**changes: object) -> NewSession:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "user_id": USER,
        "expires_at": NOW + timedelta(days=1),
        "refresh_jti": "live-jti",
    }
    values.update(changes)
    return NewSession(**values)  # type: ignore[arg-type]


def a_token(session: NewSession, typ: str, jti: str = "live-jti") -> VerifiedToken:
    return VerifiedToken(
        typ=typ,
        user_id=session.user_id,
        session_id=session.id,
        token_id=jti,
        not_before=0,
        expires_at=2**40,
        issued_at=0,
    )


def test_a_live_session_is_proven_by_its_access_token_and_its_unspent_refresh_token() -> None:
    session = a_session()

    assert proves_live_session(session, a_token(session, ACCESS_TYP, "any-access-jti"), NOW)
    assert proves_live_session(session, a_token(session, REFRESH_TYP), NOW)


@pytest.mark.parametrize(
    ("session", "typ", "jti"),
    [
        (a_session(revoked_at=NOW - timedelta(seconds=1)), ACCESS_TYP, "x"),
        (a_session(revoked_at=NOW - timedelta(seconds=1)), REFRESH_TYP, "live-jti"),
        (a_session(expires_at=NOW), ACCESS_TYP, "x"),
        (a_session(), REFRESH_TYP, "spent-jti"),
        (a_session(user_id=uuid.uuid4()), ACCESS_TYP, "x"),
    ],
    ids=["revoked-access", "revoked-refresh", "expired", "spent-refresh", "other-user"],
)
def test_an_ended_session_a_spent_token_or_another_user_proves_nothing(
    session: NewSession, typ: str, jti: str
) -> None:
    token = a_token(a_session(id=session.id), typ, jti)

    assert not proves_live_session(session, token, NOW)


def test_no_session_proves_nothing() -> None:
    assert not proves_live_session(None, a_token(a_session(), ACCESS_TYP), NOW)


# --- logout ---------------------------------------------------------------------------------


async def test_logout_with_the_refresh_token_ends_the_session(
    client: Client, alice: Account
) -> None:
    response = await client.post("/logout", json={"refresh_token": alice.refresh_token})

    assert response.status_code == 204
    assert await response.get_data() == b""
    await assert_session_ended(client, alice)


async def test_logout_with_the_refresh_token_as_a_form_field(
    client: Client, alice: Account
) -> None:
    response = await client.post("/logout", form={"refresh_token": alice.refresh_token})

    assert response.status_code == 204
    await assert_session_ended(client, alice)


async def test_logout_with_a_bearer_token_and_no_body(client: Client, alice: Account) -> None:
    response = await client.post("/logout", headers=bearer(alice.access_token))

    assert response.status_code == 204
    await assert_session_ended(client, alice)


async def test_logout_with_a_bearer_token_and_a_scope_in_json(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)

    response = await client.post(
        "/logout", json={"scope": "global"}, headers=bearer(alice.access_token)
    )

    assert response.status_code == 204
    await assert_session_ended(client, alice)
    await assert_session_ended(client, phone)


async def test_logout_local_leaves_the_other_sessions(client: Client, alice: Account) -> None:
    phone = await another_login(client, alice)

    response = await client.post("/logout", json={"refresh_token": alice.refresh_token})

    assert response.status_code == 204
    await assert_session_ended(client, alice)
    await assert_session_alive(client, phone)


async def test_logout_others_keeps_only_the_calling_session(client: Client, alice: Account) -> None:
    phone = await another_login(client, alice)
    laptop = await another_login(client, alice)

    response = await client.post(
        "/logout", json={"refresh_token": alice.refresh_token, "scope": "others"}
    )

    assert response.status_code == 204
    await assert_session_ended(client, phone)
    await assert_session_ended(client, laptop)
    await assert_session_alive(client, alice)


async def test_logout_others_with_a_bearer_token(client: Client, alice: Account) -> None:
    phone = await another_login(client, alice)

    response = await client.post(
        "/logout", form={"scope": "others"}, headers=bearer(alice.access_token)
    )

    assert response.status_code == 204
    await assert_session_ended(client, phone)
    await assert_session_alive(client, alice)


async def test_logout_global_ends_every_session_of_the_user_only(
    client: Client, alice: Account, bob: Account
) -> None:
    phone = await another_login(client, alice)

    response = await client.post(
        "/logout", json={"refresh_token": phone.refresh_token, "scope": "global"}
    )

    assert response.status_code == 204
    await assert_session_ended(client, alice)
    await assert_session_ended(client, phone)
    await assert_session_alive(client, bob)


async def test_logout_prefers_the_refresh_token_over_the_bearer_token(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)

    response = await client.post(
        "/logout",
        json={"refresh_token": phone.refresh_token},
        headers=bearer(alice.access_token),
    )

    assert response.status_code == 204
    await assert_session_ended(client, phone)
    await assert_session_alive(client, alice)


async def test_logout_without_a_token_is_401_with_a_bare_challenge(client: Client) -> None:
    response = await client.post("/logout")

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="service"'
    assert "error" not in await response.get_json()


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"refresh_token": "not-a-token"}},
        {"form": {"refresh_token": "a.b.c"}},
        {"headers": {"Authorization": "Bearer not-a-token"}},
    ],
)
async def test_logout_with_a_bad_token_is_401_invalid_token(
    client: Client, alice: Account, request_kwargs: dict[str, object]
) -> None:
    response = await client.post("/logout", **request_kwargs)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert (await response.get_json())["error"] == "invalid_token"
    await assert_session_alive(client, alice)


async def test_logout_refuses_a_token_of_the_wrong_kind(client: Client, alice: Account) -> None:
    access_as_refresh = await client.post("/logout", json={"refresh_token": alice.access_token})
    refresh_as_bearer = await client.post("/logout", headers=bearer(alice.refresh_token))

    assert access_as_refresh.status_code == 401
    assert refresh_as_bearer.status_code == 401
    await assert_session_alive(client, alice)


async def test_logout_with_a_bad_refresh_token_does_not_fall_back_to_the_bearer_token(
    client: Client, alice: Account
) -> None:
    response = await client.post(
        "/logout", json={"refresh_token": "forged"}, headers=bearer(alice.access_token)
    )

    assert response.status_code == 401
    await assert_session_alive(client, alice)


@pytest.mark.parametrize(
    "body",
    [{"scope": "everything"}, {"scope": "others", "extra": 1}, {"refresh_token": ""}, ["local"]],
)
async def test_logout_with_a_malformed_body_is_422_and_ends_nothing(
    client: Client, alice: Account, body: object
) -> None:
    response = await client.post("/logout", json=body, headers=bearer(alice.access_token))

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["errors"]
    await assert_session_alive(client, alice)


async def test_logout_with_a_body_that_is_not_json_is_415(client: Client, alice: Account) -> None:
    response = await client.post(
        "/logout",
        data="scope=global",
        headers={**bearer(alice.access_token), "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    await assert_session_alive(client, alice)


@pytest.mark.parametrize("credential", ["refresh", "access"])
async def test_logout_is_idempotent(client: Client, alice: Account, credential: str) -> None:
    """A client that lost the answer and retries gets 204 again, not an error."""
    kwargs: dict[str, object] = (
        {"json": {"refresh_token": alice.refresh_token}}
        if credential == "refresh"
        else {"headers": bearer(alice.access_token)}
    )

    first = await client.post("/logout", **kwargs)
    second = await client.post("/logout", **kwargs)

    assert (first.status_code, second.status_code) == (204, 204)
    await assert_session_ended(client, alice)


async def test_logout_local_with_a_spent_refresh_token_ends_its_session(
    client: Client, alice: Account
) -> None:
    rotated = await assert_session_alive(client, alice)

    response = await client.post("/logout", json={"refresh_token": alice.refresh_token})

    assert response.status_code == 204
    await assert_session_ended(client, rotated)


async def test_logout_others_needs_a_live_session(client: Client, alice: Account) -> None:
    """Ending other sessions acts on them, so a token of an ended session may not do it."""
    phone = await another_login(client, alice)
    await client.post("/logout", headers=bearer(alice.access_token))

    by_access = await client.post(
        "/logout", json={"scope": "others"}, headers=bearer(alice.access_token)
    )
    by_refresh = await client.post(
        "/logout", json={"refresh_token": alice.refresh_token, "scope": "global"}
    )

    assert by_access.status_code == 401
    assert (await by_access.get_json())["error"] == "invalid_token"
    assert by_refresh.status_code == 401
    await assert_session_alive(client, phone)


async def test_logout_global_with_a_spent_refresh_token_is_refused(
    client: Client, alice: Account
) -> None:
    """Someone holding an old refresh token cannot log the owner out of every device."""
    phone = await another_login(client, alice)
    await refresh(client, phone.refresh_token)  # phone's first refresh token is now spent

    response = await client.post(
        "/logout", json={"refresh_token": phone.refresh_token, "scope": "global"}
    )

    assert response.status_code == 401
    await assert_session_alive(client, alice)


# --- sessions -------------------------------------------------------------------------------


async def test_sessions_lists_live_sessions_newest_first_and_marks_the_current_one(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice, user_agent="phone/2.0")
    laptop = await another_login(client, alice, user_agent="laptop/3.0")

    response = await client.get("/sessions", headers=bearer(phone.access_token))

    assert response.status_code == 200
    sessions = (await response.get_json())["sessions"]
    assert len(sessions) == 3
    assert set(sessions[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "client_address",
        "current",
    }
    assert [s["user_agent"] for s in sessions[:2]] == ["laptop/3.0", "phone/2.0"]
    assert [s["current"] for s in sessions] == [False, True, False]
    created = [datetime.fromisoformat(s["created_at"]) for s in sessions]
    assert created == sorted(created, reverse=True)
    for session in sessions:
        uuid.UUID(session["id"])
        assert session["client_address"]
        assert datetime.fromisoformat(session["expires_at"]) > created[0]
    assert laptop.refresh_token not in await response.get_data(as_text=True)


async def test_sessions_leaves_out_ended_sessions_and_other_users(
    client: Client, alice: Account, bob: Account
) -> None:
    phone = await another_login(client, alice)
    await client.post("/logout", json={"refresh_token": phone.refresh_token})

    alice_sessions = await live_session_ids(client, alice)
    bob_sessions = await live_session_ids(client, bob)

    assert len(alice_sessions) == 1
    assert len(bob_sessions) == 1
    assert alice_sessions != bob_sessions


async def test_sessions_updates_last_used_on_refresh(client: Client, alice: Account) -> None:
    before = (await (await client.get("/sessions", headers=bearer(alice.access_token))).get_json())[
        "sessions"
    ][0]
    rotated = await assert_session_alive(client, alice)

    after = (
        await (await client.get("/sessions", headers=bearer(rotated.access_token))).get_json()
    )["sessions"][0]

    assert after["id"] == before["id"]
    assert after["created_at"] == before["created_at"]
    assert datetime.fromisoformat(after["last_used_at"]) > datetime.fromisoformat(
        before["last_used_at"]
    )


async def test_sessions_needs_a_bearer_token(client: Client) -> None:
    response = await client.get("/sessions")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="service"'


async def test_delete_session_ends_that_session_only(client: Client, alice: Account) -> None:
    phone = await another_login(client, alice, user_agent="phone/2.0")
    phone_id = next(
        s["id"]
        for s in (
            await (await client.get("/sessions", headers=bearer(alice.access_token))).get_json()
        )["sessions"]
        if s["user_agent"] == "phone/2.0"
    )

    response = await client.delete(f"/sessions/{phone_id}", headers=bearer(alice.access_token))

    assert response.status_code == 204
    await assert_session_ended(client, phone)
    alice = await assert_session_alive(client, alice)
    assert phone_id not in await live_session_ids(client, alice)


async def test_delete_session_of_the_current_session_logs_out(
    client: Client, alice: Account
) -> None:
    (current,) = await live_session_ids(client, alice)

    response = await client.delete(f"/sessions/{current}", headers=bearer(alice.access_token))

    assert response.status_code == 204
    await assert_session_ended(client, alice)


async def test_delete_session_of_another_user_is_404_and_it_survives(
    client: Client, alice: Account, bob: Account
) -> None:
    (bobs,) = await live_session_ids(client, bob)

    response = await client.delete(f"/sessions/{bobs}", headers=bearer(alice.access_token))

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    await assert_session_alive(client, bob)


async def test_delete_session_unknown_ended_or_malformed_is_404(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)
    ids = await live_session_ids(client, alice)
    await client.post("/logout", json={"refresh_token": phone.refresh_token})
    (ended,) = set(ids) - set(await live_session_ids(client, alice))

    for session_id in (uuid.uuid4(), ended, "not-a-uuid"):
        response = await client.delete(
            f"/sessions/{session_id}", headers=bearer(alice.access_token)
        )
        assert response.status_code == 404, session_id


async def test_delete_session_needs_a_bearer_token(client: Client, alice: Account) -> None:
    (current,) = await live_session_ids(client, alice)

    response = await client.delete(f"/sessions/{current}")

    assert response.status_code == 401
    await assert_session_alive(client, alice)
