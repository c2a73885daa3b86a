"""Guessing second-factor codes: wrong codes are limited like wrong passwords, on counters of
their own.

The guesser in these tests holds the password, as anyone who reaches the code step must.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pyotp
import pytest

from tests.conftest import AppFactory, app_factory, sign_up
from tests.mfa_helpers import T0, at, enrol, mfa_token, password_step, second_step, start


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    limits = {
        "auth_requests_per_minute": 0,
        "login_failures_per_username": 3,
        "login_failures_per_device": 3,
    }
    async with app_factory(database_url, limits) as build:
        yield build


async def test_wrong_codes_are_limited_per_account_even_for_the_right_code_then(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    app = await make_app()
    client = app.test_client()
    enrolled = await enrol(app, client, await sign_up(client, "carol"))
    at(app, T0 + 30)
    wrong = enrolled.totp.at(T0 + 3000)
    guesser = app.test_client()  # holds the password, but no device cookie of the owner's
    for _ in range(3):
        token = await mfa_token(guesser, enrolled.account)
        assert (await second_step(guesser, token, code=wrong)).status_code == 400

    token = await mfa_token(guesser, enrolled.account)
    blocked = await second_step(guesser, token, code=enrolled.totp.at(T0 + 30))

    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "wrong codes" in (await blocked.get_json())["detail"]
    assert any("limit=otp_account" in record.getMessage() for record in security_events)


async def test_wrong_codes_do_not_use_up_the_password_allowance(make_app: AppFactory) -> None:
    app = await make_app()
    client = app.test_client()
    enrolled = await enrol(app, client, await sign_up(client, "carol"))
    at(app, T0 + 30)
    guesser = app.test_client()
    for _ in range(3):
        token = await mfa_token(guesser, enrolled.account)
        await second_step(guesser, token, code=enrolled.totp.at(T0 + 3000))

    assert "mfa_token" in await password_step(guesser, enrolled.account)


async def test_a_known_device_is_not_locked_out_by_a_guesser_with_the_password(
    make_app: AppFactory,
) -> None:
    """The owner's device credential counts its wrong codes on its own counter."""
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
    for _ in range(4):
        token = await mfa_token(thief, account)
        await second_step(thief, token, code=enrolled.totp.at(T0 + 3000))
    at(app, T0 + 60)

    response = await owner.post(
        "/login/mfa",
        json={
            "mfa_token": await mfa_token(owner, account),
            "code": enrolled.totp.at(T0 + 60),
            "device_token": device_token,
        },
    )

    assert response.status_code == 200


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
