"""The refresh reuse interval: a token just spent gets the same successor again, for a while.

Concurrent refreshes of one client (tabs, retries) must all succeed with one and the same new
refresh token and exactly one rotation; an older token, or a reuse after the interval, still
ends the session (RFC 9700 section 4.14.2). The successor is re-signed, never stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select, update

from harness.live_server import LiveServer
from service import create_app
from service.db.models import LoginSession
from service.security.tokens.session import REFRESH_TYP, VerifiedToken
from service.sessions.rules import NewSession, RefreshDecision, decide_refresh
from tests.helpers import AppFactory, app_factory, make_settings, sign_up
from tests.signing import SigningKey, key_settings
from tests.test_refresh import bearer, claims, refresh

RACERS = 20
INTERVAL = 10


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    async with app_factory(database_url, {"refresh_reuse_interval": INTERVAL}) as build:
        yield build


@pytest.fixture
async def grace_client(make_app: AppFactory) -> Client:
    return (await make_app()).test_client()


async def session_row(app: Quart, session_id: str) -> Any:
    async with app.extensions["service"].db.read() as db:
        return await db.first(select(LoginSession).where(LoginSession.id == uuid.UUID(session_id)))


# --- the rule -------------------------------------------------------------------------------


def decision(token_id: str, *, rotated_seconds_ago: float, interval: int) -> RefreshDecision:
    now = datetime.now(UTC)
    user, sid = uuid.uuid4(), uuid.uuid4()
    session = NewSession(
        id=sid,
        user_id=user,
        expires_at=now + timedelta(days=1),
        refresh_jti="current",
        previous_jti="previous",
        rotated_at=now - timedelta(seconds=rotated_seconds_ago),
    )
    token = VerifiedToken(REFRESH_TYP, user, sid, token_id, 0, 2**40, 0)
    return decide_refresh(session, token, now, interval)


def test_the_token_just_spent_repeats_within_the_interval() -> None:
    assert decision("previous", rotated_seconds_ago=9.9, interval=10) is RefreshDecision.REPEAT
    assert decision("current", rotated_seconds_ago=9.9, interval=10) is RefreshDecision.ROTATE


def test_the_token_just_spent_is_reuse_after_the_interval() -> None:
    assert decision("previous", rotated_seconds_ago=10, interval=10) is RefreshDecision.REUSED


def test_an_older_token_is_reuse_even_within_the_interval() -> None:
    assert decision("older", rotated_seconds_ago=0, interval=10) is RefreshDecision.REUSED


def test_interval_zero_keeps_the_strict_rule() -> None:
    assert decision("previous", rotated_seconds_ago=0, interval=0) is RefreshDecision.REUSED
    # A request that began before the rotation it lost to committed: still reuse.
    assert decision("previous", rotated_seconds_ago=-1, interval=0) is RefreshDecision.REUSED


# --- through the app ------------------------------------------------------------------------


async def test_a_repeat_gets_the_same_refresh_token_and_a_working_access_token(
    grace_client: Client,
) -> None:
    alice = await sign_up(grace_client, "alice")
    first = await (await refresh(grace_client, alice.refresh_token)).get_json()

    response = await refresh(grace_client, alice.refresh_token)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    again = await response.get_json()
    assert again["refresh_token"] == first["refresh_token"]
    assert claims(again["access_token"])["sid"] == claims(first["access_token"])["sid"]
    for pair in (first, again):
        assert (
            await grace_client.get("/me", headers=bearer(pair["access_token"]))
        ).status_code == 200
    # The repeated successor is the live token: it rotates as usual.
    assert (await refresh(grace_client, again["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_all_get_one_successor_and_rotate_once(
    make_app: AppFactory,
) -> None:
    app = await make_app()
    client = app.test_client()
    alice = await sign_up(client, "alice")
    spent_jti = claims(alice.refresh_token)["jti"]

    responses = await asyncio.gather(*(refresh(client, alice.refresh_token) for _ in range(RACERS)))

    assert [response.status_code for response in responses] == [200] * RACERS
    tokens = {(await response.get_json())["refresh_token"] for response in responses}
    assert len(tokens) == 1
    (successor,) = tokens
    row = await session_row(app, claims(successor)["sid"])
    assert row.revoked_at is None
    assert (row.previous_jti, row.refresh_jti) == (spent_jti, claims(successor)["jti"])
    assert (await refresh(client, successor)).status_code == 200


async def test_concurrent_refreshes_from_independent_instances_rotate_once(
    database_url: str, grace_client: Client
) -> None:
    """Several workers, each with its own engine and connections, race with one token."""
    alice = await sign_up(grace_client, "alice")
    settings = make_settings(database_url, refresh_reuse_interval=INTERVAL)
    instances = [create_app(settings) for _ in range(4)]
    async with AsyncExitStack() as stack:
        for instance in instances:
            await stack.enter_async_context(instance.test_app())  # type: ignore[arg-type]
        clients = [instance.test_client() for instance in instances]
        responses = await asyncio.gather(
            *(refresh(clients[n % len(clients)], alice.refresh_token) for n in range(RACERS))
        )

    assert [response.status_code for response in responses] == [200] * RACERS
    assert len({(await response.get_json())["refresh_token"] for response in responses}) == 1


async def test_a_token_two_rotations_back_ends_the_session(grace_client: Client) -> None:
    alice = await sign_up(grace_client, "alice")
    first = await (await refresh(grace_client, alice.refresh_token)).get_json()
    second = await (await refresh(grace_client, first["refresh_token"])).get_json()

    response = await refresh(grace_client, alice.refresh_token)

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_grant"
    assert (
        await grace_client.get("/me", headers=bearer(second["access_token"]))
    ).status_code == 401
    assert (await refresh(grace_client, second["refresh_token"])).status_code == 400


async def test_a_reuse_after_the_interval_ends_the_session(make_app: AppFactory) -> None:
    app = await make_app()
    client = app.test_client()
    alice = await sign_up(client, "alice")
    first = await (await refresh(client, alice.refresh_token)).get_json()
    async with app.extensions["service"].db.write() as db:
        await db.run(
            update(LoginSession).values(
                rotated_at=datetime.now(UTC) - timedelta(seconds=INTERVAL + 1)
            )
        )

    response = await refresh(client, alice.refresh_token)

    assert response.status_code == 400
    assert "already used" in (await response.get_json())["detail"]
    assert (await client.get("/me", headers=bearer(first["access_token"]))).status_code == 401


async def test_a_repeat_of_a_revoked_session_is_refused(grace_client: Client) -> None:
    alice = await sign_up(grace_client, "alice")
    first = await (await refresh(grace_client, alice.refresh_token)).get_json()
    logout = await grace_client.post("/logout", json={"refresh_token": first["refresh_token"]})
    assert logout.status_code == 204

    response = await refresh(grace_client, alice.refresh_token)

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_grant"


async def test_no_usable_token_is_stored(make_app: AppFactory) -> None:
    """What the database holds (a dump) is token ids and times, never a token or signature."""
    app = await make_app()
    client = app.test_client()
    alice = await sign_up(client, "alice")
    successor = (await (await refresh(client, alice.refresh_token)).get_json())["refresh_token"]

    row = await session_row(app, claims(successor)["sid"])
    stored = " ".join(str(value) for value in dict(row).values())
    assert claims(successor)["jti"] in stored  # the ids are there
    for token in (alice.refresh_token, successor):
        assert token.split(".")[2] not in stored
        assert token not in stored


async def test_the_repeat_is_byte_identical_for_every_algorithm(
    make_app: AppFactory, algorithm: str, key_pool: dict[str, list[SigningKey]]
) -> None:
    """Signatures are deterministic for each algorithm (ES256 through RFC 6979 nonces)."""
    client = (await make_app(**key_settings(algorithm, key_pool[algorithm][0]))).test_client()
    alice = await sign_up(client, "alice")
    responses = await asyncio.gather(*(refresh(client, alice.refresh_token) for _ in range(4)))

    tokens = [(await response.get_json())["refresh_token"] for response in responses]
    assert len(set(tokens)) == 1
    assert (await refresh(client, tokens[0])).status_code == 200


# --- against a live server (production settings: the default interval) ---------------------


def test_racing_refreshes_against_a_live_server_rotate_once(live_server: LiveServer) -> None:
    username = f"racer-{uuid.uuid4().hex[:12]}"
    password = "correct-horse-battery"
    with live_server.client() as http:
        assert http.post("/signup", json={"username": username, "password": password}).is_success
        login = http.post("/login", data={"username": username, "password": password}).json()

    def race(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
            return http.post("/refresh", json={"refresh_token": login["refresh_token"]})

    with ThreadPoolExecutor(RACERS) as pool:
        responses = list(pool.map(race, range(RACERS)))

    assert [response.status_code for response in responses] == [200] * RACERS
    tokens = {response.json()["refresh_token"] for response in responses}
    assert len(tokens) == 1
    with live_server.client() as http:
        assert http.post("/refresh", json={"refresh_token": tokens.pop()}).status_code == 200
        # Two rotations back now: the session ends.
        reused = http.post("/refresh", json={"refresh_token": login["refresh_token"]})
        assert reused.status_code == 400
