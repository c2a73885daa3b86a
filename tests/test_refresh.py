"""Refresh-token rotation: spending, reuse detection, token kinds, absolute lifetime, races."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from service import create_app
from service.config import Settings
from service.db.models import LoginSession
from tests.helpers import Account, log_in, make_settings, sign_up

RACERS = 12


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, read without verifying it (the test only looks)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refresh(client: Client, token: str) -> Any:
    return await client.post("/refresh", json={"refresh_token": token})


async def assert_invalid_grant(response: Any) -> None:
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["error"] == "invalid_grant"
    assert response.headers["Cache-Control"] == "no-store"


async def sessions_of(app: Quart) -> list[Any]:
    async with app.extensions["service"].db.read() as db:
        return list(await db.all(select(LoginSession)))


# --- rotation -------------------------------------------------------------------------------


async def test_refresh_returns_a_new_pair(client: Client, alice: Account) -> None:
    response = await refresh(client, alice.refresh_token)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    pair = await response.get_json()
    assert set(pair) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
    }
    assert pair["token_type"] == "bearer"
    assert pair["refresh_token"] != alice.refresh_token
    assert pair["access_token"] != alice.access_token
    assert claims(pair["refresh_token"])["sid"] == claims(alice.refresh_token)["sid"]
    assert (await client.get("/me", headers=bearer(pair["access_token"]))).status_code == 200


async def test_refresh_accepts_a_form_body(client: Client, alice: Account) -> None:
    response = await client.post("/refresh", form={"refresh_token": alice.refresh_token})
    assert response.status_code == 200

    pair = await response.get_json()
    assert pair["refresh_token"] != alice.refresh_token
    assert claims(pair["refresh_token"])["sid"] == claims(alice.refresh_token)["sid"]
    assert (await client.get("/me", headers=bearer(pair["access_token"]))).status_code == 200
    await assert_invalid_grant(await refresh(client, alice.refresh_token))  # the old one is spent


async def test_the_new_refresh_token_can_be_spent_in_turn(client: Client, alice: Account) -> None:
    token = alice.refresh_token
    for _ in range(3):
        response = await refresh(client, token)
        assert response.status_code == 200
        token = (await response.get_json())["refresh_token"]


async def test_refresh_spends_the_presented_token(client: Client, alice: Account) -> None:
    assert (await refresh(client, alice.refresh_token)).status_code == 200

    await assert_invalid_grant(await refresh(client, alice.refresh_token))


async def test_a_spent_refresh_token_is_refused_as_a_bearer_token(
    client: Client, alice: Account
) -> None:
    """Over HTTP, not only in the verified-token cache's unit test: a refresh token is never
    an access token, also once the refresh verified (and cached) it."""
    assert (await refresh(client, alice.refresh_token)).status_code == 200

    response = await client.get("/me", headers=bearer(alice.refresh_token))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_refresh_reuse_revokes_the_session(
    app: Quart, client: Client, alice: Account
) -> None:
    rotated = await (await refresh(client, alice.refresh_token)).get_json()

    reused = await refresh(client, alice.refresh_token)
    await assert_invalid_grant(reused)
    assert (await reused.get_json())["detail"] == (
        "The refresh token was already used, so its session has been ended for safety (a spent "
        "token presented again may have been stolen): log in again."
    )

    # The newest refresh token and every access token of the session are dead now; a token
    # of the ended session (spent or not) gets the one answer of any dead token.
    for dead in (rotated["refresh_token"], alice.refresh_token, "not-a-token"):
        response = await refresh(client, dead)
        await assert_invalid_grant(response)
        detail = (await response.get_json())["detail"]
        assert detail == "The refresh token is invalid, expired or revoked."
    for access in (rotated["access_token"], alice.access_token):
        response = await client.get("/me", headers=bearer(access))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert (await client.get("/items", headers=bearer(access))).status_code == 401
    (session,) = await sessions_of(app)
    assert session.revoked_at is not None


async def test_refresh_reuse_leaves_the_users_other_sessions_alone(
    client: Client, alice: Account
) -> None:
    other = await log_in(client, alice.username, alice.password)
    await refresh(client, alice.refresh_token)

    await assert_invalid_grant(await refresh(client, alice.refresh_token))

    assert (await client.get("/me", headers=bearer(other["access_token"]))).status_code == 200
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_refresh_reuse_leaves_other_users_alone(
    client: Client, alice: Account, bob: Account
) -> None:
    await refresh(client, alice.refresh_token)
    await refresh(client, alice.refresh_token)

    assert (await client.get("/me", headers=bob.headers)).status_code == 200
    assert (await refresh(client, bob.refresh_token)).status_code == 200


# --- token kinds ----------------------------------------------------------------------------


async def test_a_refresh_token_is_refused_as_an_access_token(
    client: Client, alice: Account
) -> None:
    for path in ("/me", "/items"):
        response = await client.get(path, headers=bearer(alice.refresh_token))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_an_access_token_is_refused_at_refresh(client: Client, alice: Account) -> None:
    await assert_invalid_grant(await refresh(client, alice.access_token))
    # Refused, not counted as a reuse: the session lives on.
    assert (await refresh(client, alice.refresh_token)).status_code == 200


def tamper(token: str, part: int) -> str:
    pieces = token.split(".")
    text = pieces[part]
    pieces[part] = text[:-4] + ("AAAA" if text[-4:] != "AAAA" else "BBBB")
    return ".".join(pieces)


def forge_payload(token: str, **changes: Any) -> str:
    header, _, signature = token.split(".")
    body = claims(token) | changes
    raw = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{raw}.{signature}"


def unsigned(token: str) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"refresh+jwt"}').decode().rstrip("=")
    return f"{header}.{token.split('.')[1]}."


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda token: "garbage", id="garbage"),
        pytest.param(lambda token: "a.b.c", id="three-dots"),
        pytest.param(lambda token: token + "x", id="appended"),
        pytest.param(lambda token: tamper(token, 2), id="signature-changed"),
        pytest.param(lambda token: tamper(token, 0), id="header-changed"),
        pytest.param(lambda token: forge_payload(token, exp=int(time.time()) + 10**8), id="exp"),
        pytest.param(lambda token: forge_payload(token, sub="someone-else"), id="sub"),
        pytest.param(unsigned, id="alg-none"),
        pytest.param(lambda token: "é" * 40, id="non-ascii"),
    ],
)
async def test_a_garbage_or_tampered_refresh_token_is_invalid_grant(
    client: Client, alice: Account, make_token: Any
) -> None:
    await assert_invalid_grant(await refresh(client, make_token(alice.refresh_token)))
    # A forgery is not a reuse of the real token: the session still works.
    assert (await refresh(client, alice.refresh_token)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing"),
        pytest.param({"refresh_token": ""}, id="empty"),
        pytest.param({"refresh_token": 42}, id="number"),
        pytest.param({"refresh_token": "x" * 5000}, id="too-long"),
        pytest.param({"refresh_token": "x", "extra": 1}, id="extra-field"),
    ],
)
async def test_a_malformed_refresh_request_is_invalid_request(client: Client, body: Any) -> None:
    response = await client.post("/refresh", json=body)

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


# --- absolute lifetime ----------------------------------------------------------------------


@pytest.fixture
async def short_app(app: Quart, settings: Settings) -> Any:
    """The service with the shortest session lifetime the settings allow (5 minutes).

    It shares the database of ``app``, which empties it before the test.
    """
    app = create_app(
        make_settings(settings.database_url, refresh_token_ttl=300, access_token_ttl=600)
    )
    async with app.test_app():
        yield app


async def test_rotation_never_extends_the_session(short_app: Quart) -> None:
    client = short_app.test_client()
    account = await sign_up(client, "alice")
    first = claims(account.refresh_token)
    assert first["exp"] - first["iat"] <= 300

    await asyncio.sleep(1.1)
    response = await refresh(client, account.refresh_token)
    pair = await response.get_json()

    second = claims(pair["refresh_token"])
    assert second["iat"] > first["iat"]
    assert second["exp"] == first["exp"]  # the login's end, not 300 s after this refresh
    assert pair["refresh_expires_in"] <= 300 - 1
    assert abs(pair["refresh_expires_in"] - (first["exp"] - time.time())) <= 2
    (session,) = await sessions_of(short_app)
    assert int(session.expires_at.timestamp()) == first["exp"]


async def test_an_access_token_never_outlives_its_session(short_app: Quart) -> None:
    client = short_app.test_client()
    account = await sign_up(client, "alice")
    pair = await log_in(client, "alice", account.password)

    assert pair["expires_in"] <= pair["refresh_expires_in"] <= 300
    assert claims(pair["access_token"])["exp"] <= claims(pair["refresh_token"])["exp"]


async def test_a_session_past_its_end_refuses_refresh_and_access(
    app: Quart, client: Client, alice: Account
) -> None:
    async with app.extensions["service"].db.write() as db:
        await db.run(
            update(LoginSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    await assert_invalid_grant(await refresh(client, alice.refresh_token))
    assert (await client.get("/me", headers=alice.headers)).status_code == 401


# --- races ----------------------------------------------------------------------------------


async def assert_exactly_one_success(responses: list[Any]) -> None:
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * (len(responses) - 1), statuses
    for response in responses:
        if response.status_code == 400:
            assert (await response.get_json())["error"] == "invalid_grant"


async def test_concurrent_refreshes_of_one_token_let_exactly_one_succeed(
    client: Client, alice: Account
) -> None:
    responses = await asyncio.gather(*(refresh(client, alice.refresh_token) for _ in range(RACERS)))

    await assert_exactly_one_success(list(responses))


async def test_concurrent_refreshes_from_independent_instances_let_exactly_one_succeed(
    settings: Settings, client: Client, alice: Account
) -> None:
    """Several workers, each with its own engine and connections, race for one token."""
    instances = [create_app(settings) for _ in range(4)]
    async with AsyncExitStack() as stack:
        for instance in instances:
            await stack.enter_async_context(instance.test_app())  # type: ignore[arg-type]
        clients = [instance.test_client() for instance in instances]
        responses = await asyncio.gather(
            *(refresh(clients[n % len(clients)], alice.refresh_token) for n in range(RACERS))
        )

    await assert_exactly_one_success(list(responses))


@asynccontextmanager
async def sessions_write_locked(
    database_url: str,
) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """Hold the write lock of the sessions table from another connection until the block ends.

    The block gets ``wait_for(n)``: on PostgreSQL it returns once ``n`` other connections wait
    on that lock (so they have read the session and decided to rotate, and queue at the
    swap's UPDATE); on SQLite, where the service takes the write lock before it reads
    (``BEGIN IMMEDIATE``), they queue at BEGIN, which cannot be observed, so it waits a while.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")

        async def settle(_: int) -> None:
            await asyncio.sleep(0.5)

        try:
            yield settle
        finally:
            connection.execute("COMMIT")
            connection.close()
        return
    postgres = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    locker = postgres.transaction()
    await locker.start()
    await postgres.execute("LOCK TABLE sessions IN EXCLUSIVE MODE")  # reads pass, writes wait

    async def waiting(count: int) -> None:
        for _ in range(200):
            # Inside a transaction pg_stat_activity is a snapshot taken once; take a new one.
            await postgres.execute("SELECT pg_stat_clear_snapshot()")
            waiters = await postgres.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiters >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"fewer than {count} refreshes reached the swap")

    try:
        yield waiting
    finally:
        await locker.commit()
        await postgres.close()


async def test_refreshes_that_both_decided_to_rotate_let_exactly_one_succeed(
    settings: Settings, database_url: str, client: Client, alice: Account
) -> None:
    """The guard of each backend, forced: two refreshes of one token from two instances (two
    pools) are held at the database until both are past the point where they race.

    PostgreSQL: both have read the session and found the token current; only the check-and-swap
    (``UPDATE ... WHERE refresh_jti = <spent>``) can stop the second. SQLite: both queue for
    the write lock that the service takes before reading (``BEGIN IMMEDIATE``); with a deferred
    transaction the loser would fail with "database is locked" (a 503), not ``invalid_grant``.
    """
    instances = [create_app(settings) for _ in range(2)]
    async with AsyncExitStack() as stack:
        for instance in instances:
            await stack.enter_async_context(instance.test_app())  # type: ignore[arg-type]
        async with sessions_write_locked(database_url) as wait_for:
            racers = [
                asyncio.ensure_future(refresh(instance.test_client(), alice.refresh_token))
                for instance in instances
            ]
            await wait_for(2)
        responses = await asyncio.gather(*racers)

    await assert_exactly_one_success(list(responses))
    losers = [response for response in responses if response.status_code == 400]
    assert "already used" in (await losers[0].get_json())["detail"]


async def test_a_lost_race_is_treated_as_reuse(client: Client, alice: Account) -> None:
    responses = await asyncio.gather(*(refresh(client, alice.refresh_token) for _ in range(4)))
    (winner,) = [response for response in responses if response.status_code == 200]
    pair = await winner.get_json()

    # The losers presented a token that was spent by then: the session ends (RFC 9700 4.14).
    assert (await client.get("/me", headers=bearer(pair["access_token"]))).status_code == 401
