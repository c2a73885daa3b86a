"""Guessing second-factor codes: every wrong code counts on its account, whatever device
credential, session or client address comes with it, within a window and under a ceiling of
100; only a new password or factor starts the counts again.

The guesser in these tests holds the password, as anyone who reaches the code step must.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.errors import TooManyRequests
from service.limits.limiter import (
    CODE_CEILING_WINDOW,
    CODE_FAILURE_CEILING,
    FAILED_CODES,
    FAILED_CODES_CEILING,
    Limits,
)
from service.limits.stores import RedisLimitStore
from service.security.tokens.account import password_binding
from tests.helpers import AppFactory, app_factory, make_settings, sign_up
from tests.mfa_helpers import T0, at, enrol, mfa_token, password_step, remove, second_step, start

#: Addresses of the guesser's clients: none of them reaches the per-address limit alone.
ADDRESSES = ["203.0.113.1", "203.0.113.2", "198.51.100.3", "198.51.100.4"]
NEW_PASSWORD = "tidal-copper-orchard-7"


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    """Apps with 3 wrong codes per account and window, unless overridden; no flood limit."""
    limits = {
        "auth_requests_per_minute": 0,
        "login_failures_per_username": 3,
        "login_failures_per_device": 3,
    }
    async with app_factory(database_url, limits) as build:
        yield build


def wrong_code(totp: pyotp.TOTP) -> str:
    """A well-formed code of no accepted step."""
    return totp.at(T0 + 3000)


async def test_wrong_codes_are_limited_per_account_even_for_the_right_code_then(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    app = await make_app()
    client = app.test_client()
    enrolled = await enrol(app, client, await sign_up(client, "carol"))
    at(app, T0 + 30)
    guesser = app.test_client()  # holds the password, but no device cookie of the owner's
    for _ in range(3):
        token = await mfa_token(guesser, enrolled.account)
        assert (
            await second_step(guesser, token, code=wrong_code(enrolled.totp))
        ).status_code == 400

    token = await mfa_token(guesser, enrolled.account)
    blocked = await second_step(guesser, token, code=enrolled.totp.at(T0 + 30))

    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert (await blocked.get_json())["detail"] == FAILED_CODES
    assert any("limit=otp_account" in record.getMessage() for record in security_events)


async def test_wrong_codes_do_not_use_up_the_password_allowance(make_app: AppFactory) -> None:
    app = await make_app()
    client = app.test_client()
    enrolled = await enrol(app, client, await sign_up(client, "carol"))
    at(app, T0 + 30)
    guesser = app.test_client()
    for _ in range(3):
        token = await mfa_token(guesser, enrolled.account)
        await second_step(guesser, token, code=wrong_code(enrolled.totp))

    assert "mfa_token" in await password_step(guesser, enrolled.account)


async def test_device_credentials_from_before_the_factor_buy_no_more_guesses(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    """The attack: log in from four clients before the owner turns the factor on, keep their
    device credentials, then guess codes with each of them from four addresses. Every guess
    counts on the account: 10 wrong codes (the default), then 429 for all of them."""
    app = await make_app(login_failures_per_username=10, login_failures_per_device=10)
    owner = app.test_client()
    account = await sign_up(owner, "carol")
    devices = [(await password_step(app.test_client(), account))["device_token"] for _ in ADDRESSES]
    enrolled = await enrol(app, owner, account)
    at(app, T0 + 30)
    guesser = app.test_client(use_cookies=False)
    tokens = [
        (await password_step(guesser, account, device_token=device))["mfa_token"]
        for device in devices
    ]

    answers = []
    for _ in range(10):
        for token, device, address in zip(tokens, devices, ADDRESSES, strict=True):
            response = await guesser.post(
                "/login/mfa",
                json={
                    "mfa_token": token,
                    "code": wrong_code(enrolled.totp),
                    "device_token": device,
                },
                scope_base={"client": (address, 40000)},
            )
            answers.append(response.status_code)
    right = await guesser.post(
        "/login/mfa",
        json={
            "mfa_token": tokens[0],
            "code": enrolled.totp.at(T0 + 30),
            "device_token": devices[0],
        },
        scope_base={"client": (ADDRESSES[0], 40000)},
    )

    assert answers == [400] * 10 + [429] * 30
    assert right.status_code == 429
    limits = {
        record.getMessage().split("limit=")[1].split()[0]
        for record in security_events
        if record.getMessage().startswith("rate_limited")
    }
    assert limits == {"otp_account"}


async def test_the_owners_device_waits_too_until_a_new_password_starts_the_counts_again(
    make_app: AppFactory,
) -> None:
    """The price of the per-account count: a guesser with the password holds up the owner's
    own devices too. The owner's way out is the right one anyway: a new password (here from a
    session the owner still has), which the guesser cannot make."""
    app = await make_app()
    owner = app.test_client()
    account = await sign_up(owner, "carol")
    enrolled = await enrol(app, owner, account)
    at(app, T0 + 30)
    first = await second_step(
        owner, await mfa_token(owner, account), code=enrolled.totp.at(T0 + 30)
    )
    device_token = (await first.get_json())["device_token"]
    thief = app.test_client()
    for _ in range(3):
        token = await mfa_token(thief, account)
        await second_step(thief, token, code=wrong_code(enrolled.totp))
    at(app, T0 + 60)

    def owners_step(token: str) -> Any:
        return owner.post(
            "/login/mfa",
            json={
                "mfa_token": token,
                "code": enrolled.totp.at(T0 + 60),
                "device_token": device_token,
            },
        )

    held_up = await owners_step(await mfa_token(owner, account))
    changed = await owner.post(
        "/me/password",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )
    account.password = NEW_PASSWORD
    let_through = await owners_step(await mfa_token(owner, account))

    assert held_up.status_code == 429
    assert changed.status_code == 204
    assert let_through.status_code == 200


async def test_wrong_codes_from_several_sessions_count_on_the_account(
    make_app: AppFactory,
) -> None:
    """Turning the factor off checks a code too; a thief with the password and several
    sessions gets no more guesses there than at the login step, and the two count together."""
    app = await make_app()
    client = app.test_client()
    account = await sign_up(client, "carol")
    enrolled = await enrol(app, client, account)
    at(app, T0 + 30)
    second = await second_step(
        client, await mfa_token(client, account), recovery_code=enrolled.recovery_codes[0]
    )
    sessions = [account, account.with_tokens(await second.get_json())]

    wrong = [
        (await remove(client, session, code=wrong_code(enrolled.totp))).status_code
        for session in (*sessions, sessions[0])
    ]
    login = await second_step(
        client, await mfa_token(client, account), code=enrolled.totp.at(T0 + 30)
    )

    assert wrong == [422, 422, 422]
    assert login.status_code == 429


async def test_wrong_first_codes_are_limited_too(make_app: AppFactory) -> None:
    app = await make_app()
    client = app.test_client()
    account = await sign_up(client, "carol")
    at(app, T0)
    secret = (await (await start(client, account)).get_json())["secret"]
    for _ in range(3):
        response = await client.post(
            "/me/mfa/totp/confirm",
            json={"code": pyotp.TOTP(secret).at(T0 + 3000)},
            headers=account.headers,
        )
        assert response.status_code == 422

    response = await client.post(
        "/me/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).at(T0)}, headers=account.headers
    )

    assert response.status_code == 429


async def test_an_account_takes_at_most_100_wrong_codes_whatever_the_window_allows(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    """NIST SP 800-63B section 5.2.2: at most 100 failed attempts per account. Windows end,
    so the window's limit alone would let a patient guesser go on for ever; the ceiling does
    not end with a window. (The window is made large here, to reach the ceiling quickly.)"""
    app = await make_app(login_failures_per_username=1000, login_failures_per_address=1000)
    client = app.test_client()
    enrolled = await enrol(app, client, await sign_up(client, "carol"))
    at(app, T0 + 30)
    token = await mfa_token(client, enrolled.account)
    answers = [
        (await second_step(client, token, code=wrong_code(enrolled.totp))).status_code
        for _ in range(CODE_FAILURE_CEILING)
    ]

    blocked = await second_step(client, token, code=enrolled.totp.at(T0 + 30))

    assert answers == [400] * CODE_FAILURE_CEILING
    assert blocked.status_code == 429
    assert (await blocked.get_json())["detail"] == FAILED_CODES_CEILING
    assert int(blocked.headers["Retry-After"]) > CODE_CEILING_WINDOW - 3600
    assert any("limit=otp_ceiling" in record.getMessage() for record in security_events)


async def test_the_ceiling_lasts_its_year_in_redis(tmp_path: Path) -> None:
    """Redis counts the ceiling for every instance, and its counter expires a year after the
    first failure, not at the end of a window."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {url} is not reachable: {error!r} (CI requires Redis)")
        pytest.skip(f"REDIS TESTS SKIPPED: Redis at {url} is not reachable: {error!r}")
    prefix = f"test-ceiling-{secrets.token_hex(4)}:"
    database = f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"  # the limits need no database
    settings = make_settings(database, login_failures_per_username=1000)
    limits = Limits(settings, RedisLimitStore(url, prefix))
    state = password_binding("$2b$hash", "sealed-secret")
    try:
        for _ in range(CODE_FAILURE_CEILING):
            with pytest.raises(LookupError):
                async with limits.code_attempt("user", state, address=None, failure=LookupError):
                    raise LookupError
        with pytest.raises(TooManyRequests) as blocked:
            async with limits.code_attempt("user", state, address=None):
                pass
        keys = await client.keys(prefix + "fail:otp:ceiling:*")
        ttl = await client.pttl(keys[0])
        fresh = limits.code_attempt(
            "user", password_binding("$2b$new", "sealed-secret"), address=None
        )
        async with fresh:
            pass
    finally:
        await limits.close()
        for key in await client.keys(prefix + "*"):
            await client.delete(key)
        await client.aclose()

    assert blocked.value.detail == FAILED_CODES_CEILING
    assert len(keys) == 1
    assert CODE_CEILING_WINDOW * 1000 - 60_000 < ttl <= CODE_CEILING_WINDOW * 1000
