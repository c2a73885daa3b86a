"""A service that sends no email has no email features: 422 for an address, 404 for the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError
from quart import Quart
from quart.typing import TestClientProtocol as Client

from tests.email_helpers import PASSWORD, assert_problem
from tests.helpers import app_factory, make_settings, sign_up


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[Quart]:
    async with app_factory(database_url, {}) as build:
        application: Quart = await build(email_enabled=False)
        yield application


async def test_signup_with_an_email_says_the_service_sends_none(client: Client) -> None:
    response = await client.post(
        "/signup", json={"username": "alice", "password": PASSWORD, "email": "a@example.com"}
    )

    body = await assert_problem(response, 422)
    assert body["detail"].startswith("This service sends no email")
    assert body["errors"] == [{"field": "email", "message": "this service sends no email"}]
    login = await client.post("/login", form={"username": "alice", "password": PASSWORD})
    assert login.status_code == 400  # no account was made


async def test_signup_without_an_email_works(client: Client) -> None:
    await sign_up(client, "alice")


async def test_the_address_change_says_the_service_sends_none(client: Client) -> None:
    alice = await sign_up(client, "alice")

    response = await client.post(
        "/me/email",
        json={"email": "a@example.com", "current_password": alice.password},
        headers=alice.headers,
    )

    assert (await assert_problem(response, 422))["detail"].startswith("This service sends no")
    me = await client.get("/me", headers=alice.headers)
    assert (await me.get_json())["email"] is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/password/forgot", {"email": "a@example.com"}),
        ("/password/reset", {"token": "x", "new_password": "a-long-new-passphrase"}),
        ("/verify-email", {"token": "x"}),
        ("/password/forgot", {"not": "valid"}),
    ],
)
async def test_the_email_routes_do_not_exist(client: Client, path: str, body: object) -> None:
    response = await client.post(path, json=body)

    assert (await assert_problem(response, 404))["detail"].startswith("This service sends no")


async def test_resend_does_not_exist_either(client: Client) -> None:
    alice = await sign_up(client, "alice")

    response = await client.post("/me/email/resend", headers=alice.headers)

    await assert_problem(response, 404)


def test_required_verification_without_email_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="REQUIRE_VERIFIED_EMAIL is on but the service"):
        make_settings("sqlite:///unused.db", email_enabled=False, require_verified_email=True)
