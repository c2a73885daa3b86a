"""Password reset by email: the same answer for every address, a one-time short-lived link
bound to the current password, every session ended, a notice sent."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, insert, select, update

from service.accounts.tokens import delete_spent_tokens
from service.config import Settings
from service.db.models import AccountToken
from service.services import services
from tests.email_helpers import (
    NEW_PASSWORD,
    assert_problem,
    link_token,
    me,
    sign_up_verified,
    sign_up_with_email,
    text_of,
)
from tests.helpers import log_in, make_settings
from tests.mailbox import Mailbox, mail_settings
from tests.session_helpers import another_login, assert_session_ended
from tests.smtp_server import SmtpServer


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    """The app mails through its own sender to the test's SMTP server."""
    return make_settings(database_url, **mail_settings(smtp_server))


RESET = "/password/reset"


async def forgot(client: Client, email: str) -> Any:
    return await client.post("/password/forgot", json={"email": email})


async def reset(client: Client, token: str, password: str = NEW_PASSWORD) -> Any:
    return await client.post(RESET, json={"token": token, "new_password": password})


async def reset_token(client: Client, mailbox: Mailbox, email: str) -> str:
    response = await forgot(client, email)
    assert response.status_code == 202
    return link_token(await mailbox.next(email, containing=RESET + "#token="), RESET)


async def test_known_and_unknown_addresses_get_the_same_answer(
    app: Quart, client: Client, mailbox: Mailbox
) -> None:
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")

    known = await forgot(client, "alice@example.com")
    unknown = await forgot(client, "nobody@example.com")

    assert known.status_code == unknown.status_code == 202
    assert await known.get_data() == await unknown.get_data()
    assert dict(known.headers).keys() == dict(unknown.headers).keys()
    await mailbox.next("alice@example.com")
    await mailbox.settle()
    assert await mailbox.queued("nobody@example.com") == 0


async def test_only_a_verified_address_gets_a_link(client: Client, mailbox: Mailbox) -> None:
    """An unverified address is only a claim, perhaps on someone else's mailbox: the answer is
    the same, and nothing is sent."""
    await sign_up_with_email(client, "alice", "alice@example.com")
    await mailbox.next("alice@example.com")  # the signup's verification link

    response = await forgot(client, "alice@example.com")
    unknown = await forgot(client, "nobody@example.com")

    assert response.status_code == 202
    assert await response.get_data() == await unknown.get_data()
    assert await mailbox.queued("alice@example.com") == 1


async def test_the_link_sets_a_new_password_and_ends_every_session(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    other = await another_login(client, alice)
    assert (await forgot(client, "alice@example.com")).status_code == 202
    message = await mailbox.next("alice@example.com", containing=RESET + "#token=")
    assert "within 30 minutes" in text_of(message)  # RESET_TOKEN_TTL in words
    assert message["Subject"] == "Reset your password"
    token = link_token(message, RESET)

    response = await reset(client, token)

    assert response.status_code == 204
    await assert_session_ended(client, alice)
    await assert_session_ended(client, other)
    old = await client.post("/login", form={"username": "alice", "password": alice.password})
    assert old.status_code == 400
    new = await log_in(client, "alice", NEW_PASSWORD)
    notice = await mailbox.next("alice@example.com")
    assert "reset" in text_of(notice)
    assert "#token=" not in text_of(notice)
    assert (await me(client, alice.with_tokens(new)))["email_verified"] is True


async def test_a_reset_token_works_once(client: Client, mailbox: Mailbox) -> None:
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")
    assert (await reset(client, token)).status_code == 204

    body = await assert_problem(await reset(client, token, "another-long-passphrase"), 400)

    assert body["type"] == "urn:service:problem:invalid-account-token"
    await log_in(client, "alice", NEW_PASSWORD)


async def test_of_two_simultaneous_resets_exactly_one_succeeds(
    client: Client, mailbox: Mailbox
) -> None:
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")

    responses = await asyncio.gather(
        reset(client, token, "first-long-passphrase"),
        reset(client, token, "second-long-passphrase"),
    )

    assert sorted(r.status_code for r in responses) == [204, 400]


async def test_a_newer_request_supersedes_the_older_link(client: Client, mailbox: Mailbox) -> None:
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    first = await reset_token(client, mailbox, "alice@example.com")
    second = await reset_token(client, mailbox, "alice@example.com")

    await assert_problem(await reset(client, first), 400)
    assert (await reset(client, second)).status_code == 204


async def test_a_password_change_kills_the_link(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")

    changed = await client.post(
        "/me/password",
        json={"current_password": alice.password, "new_password": "changed-by-the-owner"},
        headers=alice.headers,
    )

    assert changed.status_code == 204
    await assert_problem(await reset(client, token), 400)
    await log_in(client, "alice", "changed-by-the-owner")


async def test_an_address_change_kills_the_link(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")

    changed = await client.post(
        "/me/email",
        json={"email": "new@example.com", "current_password": alice.password},
        headers=alice.headers,
    )

    assert changed.status_code == 204
    await assert_problem(await reset(client, token), 400)


async def test_an_expired_link_is_refused(app: Quart, client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")
    async with services(app).db.write() as db:
        await db.run(
            update(AccountToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    await assert_problem(await reset(client, token), 400)
    await log_in(client, "alice", alice.password)


async def test_a_weak_new_password_is_refused_and_the_link_still_works(
    client: Client, mailbox: Mailbox
) -> None:
    await sign_up_verified(client, mailbox, "alicewonderland", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")

    for weak in ("short", "password123", "AliceWonderland"):
        body = await assert_problem(await reset(client, token, weak), 422)
        assert body["errors"][0]["field"] == "new_password"

    assert (await reset(client, token)).status_code == 204


async def test_a_reset_token_is_no_access_or_refresh_token(
    client: Client, mailbox: Mailbox
) -> None:
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")

    await assert_problem(await client.get("/me", headers={"Authorization": f"Bearer {token}"}), 401)
    refreshed = await client.post("/refresh", json={"refresh_token": token})
    assert (await assert_problem(refreshed, 400))["error"] == "invalid_grant"
    # Nor a verification token, nor the other way round.
    await assert_problem(await client.post("/verify-email", json={"token": token}), 400)
    assert (await reset(client, token)).status_code == 204


async def test_a_verification_token_resets_nothing(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")

    await assert_problem(await reset(client, token), 400)
    await log_in(client, "alice", alice.password)


async def test_only_the_hash_of_a_token_is_stored(
    app: Quart, client: Client, mailbox: Mailbox
) -> None:
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    token = await reset_token(client, mailbox, "alice@example.com")

    async with services(app).db.read() as db:
        rows = await db.all(select(AccountToken))
    assert rows
    for row in rows:
        assert token not in row.values()
        assert token not in str(dict(row))


async def test_requests_are_limited_per_email_address(client: Client, mailbox: Mailbox) -> None:
    statuses = [(await forgot(client, "Victim@example.com")).status_code for _ in range(5)]
    statuses.append((await forgot(client, "victim@EXAMPLE.com")).status_code)

    assert statuses == [202] * 5 + [429]


async def test_a_reset_without_an_account_behind_the_token_is_refused(client: Client) -> None:
    body = await assert_problem(await reset(client, "A" * 43), 400)

    assert body["type"] == "urn:service:problem:invalid-account-token"


async def test_delete_spent_tokens_removes_expired_and_superseded_ones(
    app: Quart, client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    await reset_token(client, mailbox, "alice@example.com")
    await client.post(  # the signup's verification token is for an address alice no longer has
        "/me/email",
        json={"email": "new@example.com", "current_password": alice.password},
        headers=alice.headers,
    )
    await sign_up_verified(client, mailbox, "bob", "bob@example.com")
    await reset_token(client, mailbox, "bob@example.com")  # a live reset token
    await sign_up_with_email(client, "carol", "carol@example.com")  # a live verification token
    await mailbox.next("carol@example.com")

    async def count() -> int:
        async with services(app).db.read() as db:
            found: int = await db.scalar(select(func.count()).select_from(AccountToken))
        return found

    # alice's new link, bob's reset link, carol's link: the change deleted alice's old ones.
    assert await count() == 3
    async with services(app).db.write() as db:  # a link for an address alice no longer has
        await db.run(
            insert(AccountToken).values(
                token_hash="0" * 64,
                user_id=uuid.UUID(alice.id),
                purpose="verify_email",
                binding="alice@example.com",
                created_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    async with services(app).db.write() as db:
        deleted_now = await delete_spent_tokens(db, datetime.now(UTC))
    assert deleted_now == 1
    assert await count() == 3
    async with services(app).db.write() as db:
        later = await delete_spent_tokens(db, datetime.now(UTC) + timedelta(hours=25))
    assert later == 3
    assert await count() == 0
