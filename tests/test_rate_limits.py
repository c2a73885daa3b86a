"""Brute-force limits: failed logins per username and per address, the request flood limit,
the client address behind proxies, and counters shared through Redis.

Limits are set small through settings. Requests name their client address through the ASGI
scope, as Hypercorn fills it in from the TCP connection. The test clients keep no cookies, so
every login here comes from an unknown device; known devices (the device credential a login
hands out) are ``tests/test_device_credentials.py``.

Redis comes from ``TEST_REDIS_URL`` (default: the local server, database 9). Each test uses its
own key prefix and deletes its keys at the end. If Redis cannot be reached the Redis tests are
skipped with a loud warning, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.limits import account_digest, address_key
from service.web.request_limit import LIMITED_ATTRIBUTE
from tests.helpers import AppFactory, app_factory

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
PASSWORD = "s3cret-passw0rd"
WRONG = "wrong-passw0rd"
ATTACKER = "203.0.113.66"
ELSEWHERE = "198.51.100.7"
#: Small limits: 3 failures per username, 5 per address, within a minute; no flood limit.
SMALL_LIMITS: dict[str, Any] = {
    "login_failures_per_username": 3,
    "login_failures_per_address": 5,
    "login_failure_window": 60,
    "auth_requests_per_minute": 0,
}


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    """Build served apps on the test database; ``SMALL_LIMITS`` unless overridden."""
    async with app_factory(database_url, SMALL_LIMITS) as build:
        yield build


async def sign_up(client: Client, username: str) -> None:
    response = await client.post("/signup", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, await response.get_data(as_text=True)


async def login(
    client: Client,
    username: str,
    password: str,
    address: str = ATTACKER,
    headers: dict[str, str] | None = None,
) -> Any:
    return await client.post(
        "/login",
        form={"username": username, "password": password},
        scope_base={"client": (address, 40000)},
        headers=headers,
    )


async def assert_rate_limited(response: Any) -> dict[str, Any]:
    """A 429 problem+json whose ``Retry-After`` is a whole number of seconds."""
    assert response.status_code == 429, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    body: dict[str, Any] = await response.get_json()
    assert body["status"] == 429
    assert body["title"] == "Too Many Requests"
    assert PASSWORD not in str(body)
    assert WRONG not in str(body)
    return body


async def fail(client: Client, username: str, times: int, **kwargs: Any) -> None:
    for _ in range(times):
        response = await login(client, username, WRONG, **kwargs)
        assert response.status_code == 400, await response.get_data(as_text=True)
        assert (await response.get_json())["error"] == "invalid_grant"


async def test_too_many_failures_for_a_username_block_even_the_right_password(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    await fail(client, "alice", 3)

    body = await assert_rate_limited(await login(client, "alice", WRONG))
    assert "Retry-After" in body["detail"]
    right = await login(client, "alice", PASSWORD)
    await assert_rate_limited(right)
    assert int(right.headers["Retry-After"]) <= 60

    event = next(record for record in security_events if record.getMessage().startswith("rate"))
    assert event.event == "rate_limited"  # type: ignore[attr-defined]
    assert event.limit == "username"  # type: ignore[attr-defined]
    assert event.client_address == ATTACKER  # type: ignore[attr-defined]
    assert event.request_id  # type: ignore[attr-defined]
    logged = " ".join(str(value) for value in vars(event).values())
    assert PASSWORD not in logged
    assert WRONG not in logged
    assert "alice" not in logged


async def test_the_limit_is_the_same_for_a_username_that_does_not_exist(
    make_app: AppFactory,
) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    await fail(client, "alice", 3)
    await fail(client, "nobody", 3, address=ELSEWHERE)

    real = await login(client, "alice", WRONG)
    unknown = await login(client, "nobody", WRONG, address=ELSEWHERE)

    assert await assert_rate_limited(real) == await assert_rate_limited(unknown)
    assert set(real.headers.keys()) == set(unknown.headers.keys())


async def test_the_username_limit_ignores_letter_case_and_address(make_app: AppFactory) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    await fail(client, "Alice", 1, address="192.0.2.1")
    await fail(client, "ALICE", 1, address="192.0.2.2")
    await fail(client, "alice", 1, address="192.0.2.3")

    await assert_rate_limited(await login(client, "alice", PASSWORD, address=ELSEWHERE))


async def test_another_user_from_another_address_is_not_affected(make_app: AppFactory) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    await sign_up(client, "bob")
    await fail(client, "alice", 3)
    await assert_rate_limited(await login(client, "alice", WRONG))

    assert (await login(client, "bob", PASSWORD, address=ELSEWHERE)).status_code == 200
    # The attacker's address is under its own limit (4 failures of 5): bob may log in from it.
    assert (await login(client, "bob", PASSWORD)).status_code == 200


async def test_the_address_limit_counts_failures_across_usernames(make_app: AppFactory) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    for number in range(5):
        await fail(client, f"victim{number}", 1)

    await assert_rate_limited(await login(client, "victim9", WRONG))
    await assert_rate_limited(await login(client, "alice", PASSWORD))
    assert (await login(client, "alice", PASSWORD, address=ELSEWHERE)).status_code == 200


async def test_successful_logins_are_not_counted_as_failures(make_app: AppFactory) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    await fail(client, "alice", 2)
    for _ in range(5):
        assert (await login(client, "alice", PASSWORD)).status_code == 200

    await fail(client, "alice", 1)
    await assert_rate_limited(await login(client, "alice", PASSWORD))


async def test_bad_requests_are_not_counted_as_failures(make_app: AppFactory) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    for _ in range(5):
        response = await client.post(
            "/login", form={"username": "alice"}, scope_base={"client": (ATTACKER, 1)}
        )
        assert response.status_code == 400
        assert (await response.get_json())["error"] == "invalid_request"

    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def test_failure_counters_expire_after_the_window(make_app: AppFactory) -> None:
    client = (await make_app(login_failure_window=1)).test_client(use_cookies=False)
    await sign_up(client, "alice")
    await fail(client, "alice", 3)
    blocked = await login(client, "alice", PASSWORD)
    await assert_rate_limited(blocked)
    assert blocked.headers["Retry-After"] == "1"

    await asyncio.sleep(1.1)

    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def change_password(client: Client, token: str, current: str) -> Any:
    return await client.post(
        "/me/password",
        json={"current_password": current, "new_password": "a-brand-new-passw0rd"},
        headers={"Authorization": f"Bearer {token}"},
        scope_base={"client": (ATTACKER, 1)},
    )


async def test_wrong_current_passwords_from_one_address_are_limited(
    make_app: AppFactory,
) -> None:
    client = (await make_app(login_failures_per_device=100)).test_client(use_cookies=False)
    await sign_up(client, "alice")
    tokens = [
        (await (await login(client, "alice", PASSWORD, address=ELSEWHERE)).get_json())[
            "access_token"
        ]
        for _ in range(5)
    ]
    # One guess per session: only the address counter (5 per window) can stop the loop.
    for token in tokens:
        response = await change_password(client, token, WRONG)
        assert response.status_code == 422
        assert (await response.get_json())["errors"][0]["field"] == "current_password"

    limited = await change_password(client, tokens[0], PASSWORD)
    await assert_rate_limited(limited)
    assert int(limited.headers["Retry-After"]) <= 60
    # The same address is limited at /login too: it is one budget of guesses.
    await assert_rate_limited(await login(client, "alice", PASSWORD))


async def test_wrong_current_passwords_are_limited_per_session_not_per_username(
    make_app: AppFactory,
) -> None:
    client = (await make_app(login_failures_per_address=100)).test_client(use_cookies=False)
    await sign_up(client, "alice")
    stolen, owners = [
        (await (await login(client, "alice", PASSWORD, address=ELSEWHERE)).get_json())[
            "access_token"
        ]
        for _ in range(2)
    ]
    for _ in range(10):  # the per-device default: 10 per window
        assert (await change_password(client, stolen, WRONG)).status_code == 422
    await assert_rate_limited(await change_password(client, stolen, PASSWORD))

    # The thief's failures are the stolen session's own: the owner can still log in anywhere
    # and change the password from another session.
    assert (await login(client, "alice", PASSWORD, address="192.0.2.20")).status_code == 200
    assert (await change_password(client, owners, PASSWORD)).status_code == 204


async def test_failed_logins_of_strangers_do_not_lock_the_password_change(
    make_app: AppFactory,
) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    token = (await (await login(client, "alice", PASSWORD, address=ELSEWHERE)).get_json())[
        "access_token"
    ]
    await fail(client, "alice", 3, address="192.0.2.30")
    await assert_rate_limited(await login(client, "alice", PASSWORD, address="192.0.2.31"))

    response = await client.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "a-brand-new-passw0rd"},
        headers={"Authorization": f"Bearer {token}"},
        scope_base={"client": (ELSEWHERE, 1)},
    )
    assert response.status_code == 204


async def test_a_right_current_password_is_not_counted(make_app: AppFactory) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    token = (await (await login(client, "alice", PASSWORD, address=ELSEWHERE)).get_json())[
        "access_token"
    ]
    await fail(client, "alice", 2)
    assert (await change_password(client, token, PASSWORD)).status_code == 204

    new = await login(client, "alice", "a-brand-new-passw0rd", address=ELSEWHERE)
    assert new.status_code == 200


async def test_request_floods_on_credential_endpoints_are_limited_per_address(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    app = await make_app(auth_requests_per_minute=3)
    client = app.test_client(use_cookies=False)
    flood = {"scope_base": {"client": (ATTACKER, 1)}}
    for _ in range(3):
        response = await client.post("/signup", json={}, **flood)
        assert response.status_code == 422

    limited = await client.post("/signup", json={}, **flood)
    await assert_rate_limited(limited)
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    assert [record.limit for record in security_events] == ["requests"]  # type: ignore[attr-defined]
    # Another address, and each other credential endpoint, has a budget of its own.
    other = {"scope_base": {"client": (ELSEWHERE, 1)}}
    assert (await client.post("/signup", json={}, **other)).status_code == 422
    assert (await client.post("/refresh", json={"refresh_token": "x"}, **flood)).status_code == 400


#: The endpoints that take credentials, and so a request limit per address.
CREDENTIAL_ENDPOINTS = {
    "auth.signup",
    "auth.login",
    "auth.login_mfa",
    "auth.refresh",
    "auth.logout",
    "accounts.verify_email",
    "accounts.forgot_password",
    "accounts.reset_password",
    "oauth.revoke",
}


async def test_exactly_the_credential_endpoints_carry_the_request_limit(app: Quart) -> None:
    limited = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if getattr(view, LIMITED_ATTRIBUTE, False)
    }
    assert limited == CREDENTIAL_ENDPOINTS


async def test_logout_floods_without_a_token_are_limited_per_address(
    make_app: AppFactory,
) -> None:
    """``/logout`` needs no bearer token (a refresh token in the body will do), so, as at
    ``/refresh``, a client could otherwise send it unboundedly: work and a log line each."""
    client = (await make_app(auth_requests_per_minute=3)).test_client()
    flood = {"scope_base": {"client": (ATTACKER, 1)}}
    for body in ({"refresh_token": "x"}, {}, {"scope": "global"}):
        assert (await client.post("/logout", json=body, **flood)).status_code in {401, 422}
    await assert_rate_limited(await client.post("/logout", json={"refresh_token": "y"}, **flood))
    await assert_rate_limited(await client.post("/logout", data=b"[" * 2000, **flood))
    other = {"scope_base": {"client": (ELSEWHERE, 1)}}
    assert (await client.post("/logout", json={"refresh_token": "x"}, **other)).status_code == 401


async def test_routes_that_check_no_credentials_have_no_request_limit(
    make_app: AppFactory,
) -> None:
    client = (await make_app(auth_requests_per_minute=1)).test_client(use_cookies=False)
    await sign_up(client, "alice")
    token = (await (await login(client, "alice", PASSWORD, address=ELSEWHERE)).get_json())[
        "access_token"
    ]
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(10):
        for path in ("/items", "/me", "/healthz"):
            response = await client.get(path, headers=bearer)
            assert response.status_code == 200, path
            assert "RateLimit-Limit" not in response.headers


async def test_a_forged_forwarded_for_is_ignored_without_trusted_proxies(
    make_app: AppFactory,
) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    for number in range(5):
        forged = {"X-Forwarded-For": f"10.9.8.{number}", "Remote-Addr": f"10.7.6.{number}"}
        await fail(client, f"victim{number}", 1, headers=forged)

    forged = {"X-Forwarded-For": "10.9.8.100"}
    await assert_rate_limited(await login(client, "alice", PASSWORD, headers=forged))


async def test_the_forwarded_for_of_a_trusted_proxy_is_the_client_address(
    make_app: AppFactory,
) -> None:
    client = (await make_app(trusted_proxy_hops=1)).test_client(use_cookies=False)
    await sign_up(client, "alice")
    # Behind the proxy every request comes from its address; the proxy appends the client's.
    proxy = "10.0.0.1"
    for number in range(6):
        forwarded = {"X-Forwarded-For": f"203.0.113.{number}"}
        await fail(client, f"victim{number}", 1, address=proxy, headers=forwarded)
    # Entries a client writes before the proxy's own are its own inventions: still one client.
    for number in range(4):
        forwarded = {"X-Forwarded-For": f"10.1.1.{number}, 203.0.113.5"}
        await fail(client, f"other{number}", 1, address=proxy, headers=forwarded)
    forwarded = {"X-Forwarded-For": "10.1.1.9, 203.0.113.5"}
    await assert_rate_limited(
        await login(client, "other9", WRONG, address=proxy, headers=forwarded)
    )

    response = await login(
        client, "alice", PASSWORD, address=proxy, headers={"X-Forwarded-For": "192.0.2.50"}
    )
    assert response.status_code == 200
    sessions = await client.get(
        "/sessions",
        headers={"Authorization": f"Bearer {(await response.get_json())['access_token']}"},
    )
    assert [item["client_address"] for item in (await sessions.get_json())["sessions"]] == [
        "192.0.2.50"
    ]


async def test_the_api_documents_the_429_of_the_limited_routes(make_app: AppFactory) -> None:
    document = await (
        await (await make_app()).test_client(use_cookies=False).get("/openapi.json")
    ).get_json()
    for path in ("/signup", "/login", "/refresh", "/me/password"):
        assert "429" in document["paths"][path]["post"]["responses"], path


def test_ipv6_clients_are_counted_by_their_network() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key(None) == "unknown"


# Redis: counters shared between instances.


def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture
async def shared_redis() -> AsyncIterator[dict[str, Any]]:
    """Settings for a Redis store under a key prefix of this test; its keys deleted after."""
    client = Redis.from_url(redis_url(), socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        await client.aclose()
        message = f"Redis at {redis_url()} is not reachable: {error!r}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI requires Redis)", pytrace=False)
        pytest.skip(f"REDIS TESTS SKIPPED: {message}")
    prefix = f"test:{secrets.token_hex(8)}:"
    try:
        yield {"redis_url": redis_url(), "rate_limit_key_prefix": prefix}
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        assert keys, "the test left no counter in Redis"
        for key in keys:
            assert await client.pttl(key) > 0, f"{key!r} never expires"
        await client.delete(*keys)
    finally:
        await client.aclose()


async def test_two_instances_share_failure_counters_through_redis(
    make_app: AppFactory, shared_redis: dict[str, Any]
) -> None:
    first = (await make_app(**shared_redis)).test_client(use_cookies=False)
    second = (await make_app(**shared_redis)).test_client(use_cookies=False)
    await sign_up(first, "alice")
    await fail(first, "alice", 2)
    await fail(second, "alice", 1, address=ELSEWHERE)

    await assert_rate_limited(await login(first, "alice", PASSWORD))
    await assert_rate_limited(await login(second, "alice", PASSWORD, address="192.0.2.9"))


async def test_two_instances_share_the_request_limit_through_redis(
    make_app: AppFactory, shared_redis: dict[str, Any]
) -> None:
    first = (await make_app(auth_requests_per_minute=2, **shared_redis)).test_client(
        use_cookies=False
    )
    second = (await make_app(auth_requests_per_minute=2, **shared_redis)).test_client(
        use_cookies=False
    )
    flood = {"scope_base": {"client": (ATTACKER, 1)}}
    assert (await first.post("/signup", json={}, **flood)).status_code == 422
    assert (await second.post("/signup", json={}, **flood)).status_code == 422

    await assert_rate_limited(await first.post("/signup", json={}, **flood))
    await assert_rate_limited(await second.post("/signup", json={}, **flood))


async def test_redis_failure_counters_expire_after_the_window(
    make_app: AppFactory, shared_redis: dict[str, Any]
) -> None:
    client = (await make_app(login_failure_window=1, **shared_redis)).test_client(use_cookies=False)
    await sign_up(client, "alice")
    await fail(client, "alice", 3)
    await assert_rate_limited(await login(client, "alice", PASSWORD))

    await asyncio.sleep(1.1)

    assert (await login(client, "alice", PASSWORD)).status_code == 200
    await fail(client, "alice", 1)  # leaves a counter for the fixture's expiry check


async def test_a_full_redis_counter_without_expiry_is_given_one(
    make_app: AppFactory, shared_redis: dict[str, Any]
) -> None:
    key = f"{shared_redis['rate_limit_key_prefix']}fail:user:{account_digest('alice')}"
    redis = Redis.from_url(redis_url())
    try:
        await redis.set(key, 99)  # as a crash or an operator might leave it: no expiry
        client = (await make_app(**shared_redis)).test_client(use_cookies=False)

        await assert_rate_limited(await login(client, "Alice", PASSWORD))
        assert 0 < await redis.pttl(key) <= 60_000
    finally:
        await redis.aclose()


async def test_instances_without_redis_count_on_their_own(make_app: AppFactory) -> None:
    first = (await make_app()).test_client(use_cookies=False)
    second = (await make_app()).test_client(use_cookies=False)
    await sign_up(first, "alice")
    await fail(first, "alice", 3)
    await assert_rate_limited(await login(first, "alice", PASSWORD))

    assert (await login(second, "alice", PASSWORD)).status_code == 200


async def test_unreachable_redis_fails_closed_on_credential_endpoints_only(
    make_app: AppFactory,
) -> None:
    healthy = (await make_app()).test_client(use_cookies=False)
    await sign_up(healthy, "alice")
    token = (await (await login(healthy, "alice", PASSWORD)).get_json())["access_token"]
    broken = (
        await make_app(redis_url="redis://127.0.0.1:1/0", auth_requests_per_minute=60)
    ).test_client(use_cookies=False)

    for response in (
        await login(broken, "alice", PASSWORD),
        await login(broken, "alice", WRONG),
        await broken.post("/signup", json={"username": "carol", "password": PASSWORD}),
    ):
        assert response.status_code == 503
        assert response.mimetype == "application/problem+json"
        assert response.headers["Retry-After"] == "1"
        assert "redis" not in (await response.get_data(as_text=True)).lower()
    assert (await login(healthy, "carol", PASSWORD)).status_code == 400  # nothing was written

    items = await broken.get("/items", headers={"Authorization": f"Bearer {token}"})
    assert items.status_code == 200


async def test_two_instances_share_device_counters_through_redis(
    make_app: AppFactory, shared_redis: dict[str, Any]
) -> None:
    first = (await make_app(login_failures_per_device=2, **shared_redis)).test_client(
        use_cookies=False
    )
    second = (await make_app(login_failures_per_device=2, **shared_redis)).test_client(
        use_cookies=False
    )
    await sign_up(first, "alice")
    device = (await (await login(first, "alice", PASSWORD, address=ELSEWHERE)).get_json())[
        "device_token"
    ]
    with_device = {"username": "alice", "password": WRONG, "device_token": device}
    for client in (first, second):
        response = await client.post("/login", form=with_device)
        assert response.status_code == 400

    with_device["password"] = PASSWORD
    await assert_rate_limited(await first.post("/login", form=with_device))
    await assert_rate_limited(await second.post("/login", form=with_device))
    # The device's failures are its own: the username is not locked for unknown clients.
    assert (await login(second, "alice", PASSWORD)).status_code == 200
