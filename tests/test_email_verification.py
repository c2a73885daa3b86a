"""Email verification: the link mailed on signup confirms the address once, until it expires,
only for that address; resending supersedes; REQUIRE_VERIFIED_EMAIL guards logins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import update

from service.config import Settings
from service.db.models import AccountToken
from service.services import services
from tests.email_helpers import PASSWORD, assert_problem, link_token, me, sign_up_with_email
from tests.helpers import AppFactory, app_factory, make_settings, sign_up
from tests.mailbox import Mailbox, mail_settings
from tests.smtp_server import SmtpServer


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    """The app mails through its own sender to the test's SMTP server."""
    return make_settings(database_url, **mail_settings(smtp_server))


async def verify(client: Client, token: object) -> Any:
    return await client.post("/verify-email", json={"token": token})


async def test_the_link_from_the_signup_message_verifies_the_address(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")

    response = await verify(client, token)

    assert response.status_code == 204
    assert (await me(client, alice))["email_verified"] is True


async def test_a_token_works_once(client: Client, mailbox: Mailbox) -> None:
    await sign_up_with_email(client, "alice", "alice@example.com")
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")
    assert (await verify(client, token)).status_code == 204

    body = await assert_problem(await verify(client, token), 400)

    assert body["type"] == "urn:service:problem:invalid-account-token"


async def test_of_two_simultaneous_uses_exactly_one_succeeds(
    client: Client, mailbox: Mailbox
) -> None:
    await sign_up_with_email(client, "alice", "alice@example.com")
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")

    responses = await asyncio.gather(*(verify(client, token) for _ in range(4)))

    assert sorted(r.status_code for r in responses) == [204, 400, 400, 400]


async def test_an_expired_token_is_refused(app: Quart, client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")
    async with services(app).db.write() as db:
        await db.run(
            update(AccountToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    await assert_problem(await verify(client, token), 400)
    assert (await me(client, alice))["email_verified"] is False


@pytest.mark.parametrize("token", ["", "x" * 65, "not-a-token", "A" * 43])
async def test_made_up_tokens_are_refused(client: Client, token: str) -> None:
    response = await verify(client, token)

    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


async def test_a_verification_token_is_no_access_or_refresh_token(
    client: Client, mailbox: Mailbox
) -> None:
    await sign_up_with_email(client, "alice", "alice@example.com")
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")

    access = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    refreshed = await client.post("/refresh", json={"refresh_token": token})

    await assert_problem(access, 401)
    assert (await assert_problem(refreshed, 400))["error"] == "invalid_grant"
    assert (await verify(client, token)).status_code == 204


async def test_an_access_or_refresh_token_is_no_verification_token(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")

    for token in (alice.access_token, alice.refresh_token):
        response = await verify(client, token)
        assert response.status_code in (400, 422)
    assert (await me(client, alice))["email_verified"] is False


async def test_resend_supersedes_the_older_link(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    first = link_token(await mailbox.next("alice@example.com"), "/verify-email")

    response = await client.post("/me/email/resend", headers=alice.headers)

    assert response.status_code == 202
    second = link_token(await mailbox.next("alice@example.com"), "/verify-email")
    assert second != first
    await assert_problem(await verify(client, first), 400)
    assert (await verify(client, second)).status_code == 204
    again = await client.post("/me/email/resend", headers=alice.headers)
    assert (await assert_problem(again, 409))["detail"].endswith("verified already.")


async def test_resend_is_limited_per_account(client: Client, mailbox: Mailbox) -> None:
    """The account's own bucket: the signup's link was counted on the anonymous one."""
    alice = await sign_up_with_email(client, "alice", "alice@example.com")

    statuses = [
        (await client.post("/me/email/resend", headers=alice.headers)).status_code for _ in range(6)
    ]

    assert statuses == [202] * 5 + [429]
    response = await client.post("/me/email/resend", headers=alice.headers)
    assert int(response.headers["Retry-After"]) > 0
    assert await mailbox.queued("alice@example.com") == 6


async def test_resend_needs_a_login(client: Client) -> None:
    await assert_problem(await client.post("/me/email/resend"), 401)


@pytest.fixture
async def make_app(database_url: str, smtp_server: SmtpServer) -> AsyncIterator[AppFactory]:
    async with app_factory(database_url, mail_settings(smtp_server)) as build:
        yield build


async def test_required_verification_refuses_unverified_logins_after_the_password(
    make_app: AppFactory, mailbox_for: Callable[[Quart], Mailbox]
) -> None:
    """The refusal mails a new link (superseding the signup's, which may be lost or expired:
    a reset link, which goes to verified addresses only, cannot help)."""
    app = await make_app(require_verified_email=True)
    mailbox = mailbox_for(app)
    client = app.test_client()
    response = await client.post(
        "/signup", json={"username": "alice", "password": PASSWORD, "email": "a@example.com"}
    )
    assert response.status_code == 201

    wrong = await client.post("/login", form={"username": "alice", "password": "a-wrong-guess"})
    right = await client.post("/login", form={"username": "alice", "password": PASSWORD})

    assert (await assert_problem(wrong, 400))["error"] == "invalid_grant"  # nothing told
    body = await assert_problem(right, 403)
    assert body["type"] == "urn:service:problem:email-not-verified"
    assert "access_token" not in body
    first = link_token(await mailbox.next("a@example.com"), "/verify-email")
    again = link_token(await mailbox.next("a@example.com"), "/verify-email")
    await assert_problem(await verify(client, first), 400)
    assert (await verify(client, again)).status_code == 204
    assert (
        await client.post("/login", form={"username": "alice", "password": PASSWORD})
    ).status_code == 200
    await sign_up(client, "bob")  # without an address: logs in as before
