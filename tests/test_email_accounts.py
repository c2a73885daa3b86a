"""Email addresses on accounts: signup with one, answers that say nothing about other accounts,
who sees it, changing it."""

from __future__ import annotations

from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from service.config import Settings
from service.security.email_addresses import canonical_email
from tests.email_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    assert_problem,
    link_token,
    me,
    sign_up_verified,
    sign_up_with_email,
    text_of,
)
from tests.helpers import Account, log_in, make_settings, sign_up
from tests.mailbox import Mailbox, mail_settings
from tests.smtp_server import SmtpServer


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    """The app mails through its own sender to the test's SMTP server."""
    return make_settings(database_url, **mail_settings(smtp_server))


async def test_signup_with_an_email_stores_it_normalised_and_unverified(
    client: Client, mailbox: Mailbox
) -> None:
    response = await client.post(
        "/signup",
        json={"username": "alice", "password": PASSWORD, "email": "Alice@EXAMPLE.com"},
    )

    body = await response.get_json()
    assert response.status_code == 201
    assert body["email"] == "Alice@example.com"
    assert body["email_verified"] is False
    message = await mailbox.next("Alice@example.com")
    assert link_token(message, "/verify-email")


async def test_an_account_without_email_works_as_before(client: Client, alice: Account) -> None:
    body = await me(client, alice)

    assert body["email"] is None
    assert body["email_verified"] is False
    response = await client.post("/me/email/resend", headers=alice.headers)
    assert (await assert_problem(response, 409))["detail"].startswith("The account has no email")


@pytest.mark.parametrize("taken", ["alice@example.com", "ALICE@example.com", "Alice@Example.COM"])
async def test_a_taken_address_is_answered_as_a_free_one_and_its_holder_told(
    client: Client, mailbox: Mailbox, taken: str
) -> None:
    """Same status, same fields, same headers: the answer does not say whether an account
    has verified the address. Its holder gets a notice; no link goes out for the claim."""
    alice = await sign_up_verified(client, mailbox, "alice", "alice@example.com")

    claimed = await client.post(
        "/signup", json={"username": "mallory", "password": PASSWORD, "email": taken}
    )
    free = await client.post(
        "/signup", json={"username": "trent", "password": PASSWORD, "email": "trent@example.com"}
    )

    assert claimed.status_code == free.status_code == 201
    body, other = await claimed.get_json(), await free.get_json()
    assert body.keys() == other.keys()
    assert (body["email"], body["email_verified"]) == (canonical_email(taken), False)
    assert dict(claimed.headers).keys() == dict(free.headers).keys()
    assert (body["username"], body["id"] != alice.id) == ("mallory", True)
    notice = await mailbox.next("alice@example.com")
    assert notice["Subject"] == "Someone tried to use your email address"
    assert '"mallory"' in text_of(notice)
    assert "#token=" not in text_of(notice)
    link_token(await mailbox.next("trent@example.com"), "/verify-email")
    await mailbox.settle()
    # alice's mailbox: her own link and the notice; no link for the claim.
    assert await mailbox.queued("alice@example.com") == 2
    assert await mailbox.queued(canonical_email(taken)) == (
        2 if taken == "alice@example.com" else 0
    )
    await log_in(client, "mallory", PASSWORD)  # the account exists, as for a free address


async def test_a_taken_username_with_a_new_address_says_the_username(client: Client) -> None:
    await sign_up_with_email(client, "alice", "alice@example.com")

    response = await client.post(
        "/signup", json={"username": "ALICE", "password": PASSWORD, "email": "new@example.com"}
    )

    assert (await assert_problem(response, 409))["detail"] == "This username is already taken."


@pytest.mark.parametrize(
    "email",
    ["not-an-address", "a@b", "a@@example.com", "a\x00b@example.com", "x" * 300 + "@example.com"],
)
async def test_a_malformed_address_is_refused_and_nothing_is_written(
    client: Client, email: str, mailbox: Mailbox
) -> None:
    response = await client.post(
        "/signup", json={"username": "alice", "password": PASSWORD, "email": email}
    )

    body = await assert_problem(response, 422)
    assert body["errors"][0]["field"] == "email"
    assert email not in await response.get_data(as_text=True)
    assert (
        await client.post("/login", form={"username": "alice", "password": PASSWORD})
    ).status_code == 400
    assert await mailbox.queued() == 0


async def test_nobody_else_sees_the_address(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    bob = await sign_up(client, "bob")

    assert (await me(client, bob))["email"] is None
    for path in ("/me", "/sessions", "/items"):
        response = await client.get(path, headers=bob.headers)
        assert "alice@example.com" not in await response.get_data(as_text=True)
    assert (await me(client, alice))["email"] == "alice@example.com"


async def change_email(client: Client, account: Account, email: str, password: str) -> Any:
    return await client.post(
        "/me/email",
        json={"email": email, "current_password": password},
        headers=account.headers,
    )


async def test_changing_the_address_needs_the_password_and_notifies_the_old_one(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_verified(client, mailbox, "alice", "old@example.com")

    response = await change_email(client, alice, "new@example.com", alice.password)

    assert response.status_code == 204
    body = await me(client, alice)
    assert (body["email"], body["email_verified"]) == ("new@example.com", False)
    notice = await mailbox.next("old@example.com")
    assert "new@example.com" in text_of(notice)
    assert "#token=" not in text_of(notice)
    new = link_token(await mailbox.next("new@example.com"), "/verify-email")
    assert (await client.post("/verify-email", json={"token": new})).status_code == 204
    assert (await me(client, alice))["email_verified"] is True


async def test_a_link_to_the_old_address_confirms_nothing_after_a_change(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_with_email(client, "alice", "old@example.com")
    first = link_token(await mailbox.next("old@example.com"), "/verify-email")

    assert (await change_email(client, alice, "new@example.com", alice.password)).status_code == 204

    await assert_problem(await client.post("/verify-email", json={"token": first}), 400)
    assert (await me(client, alice))["email"] == "new@example.com"
    await mailbox.next("new@example.com")
    await mailbox.settle()
    # The old address was never confirmed as the account's: it is not told of the change.
    assert await mailbox.queued("old@example.com") == 1


async def test_a_wrong_current_password_changes_nothing(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_with_email(client, "alice", "old@example.com")
    await mailbox.next("old@example.com")

    response = await change_email(client, alice, "mallory@example.com", "a-wrong-guess")

    body = await assert_problem(response, 422)
    assert body["errors"] == [
        {"field": "current_password", "message": "is not the current password"}
    ]
    assert (await me(client, alice))["email"] == "old@example.com"
    assert await mailbox.queued("mallory@example.com") == 0


async def test_wrong_current_passwords_at_the_address_change_are_limited(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_with_email(client, "alice", "old@example.com")
    statuses = [
        (await change_email(client, alice, "m@example.com", f"guess-{n}")).status_code
        for n in range(11)
    ]

    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429
    response = await change_email(client, alice, "m@example.com", alice.password)
    assert response.status_code == 429


async def test_changing_to_a_taken_address_is_answered_as_to_a_free_one(
    client: Client, mailbox: Mailbox
) -> None:
    """``/me/email`` says nothing about other accounts either: 204, the address becomes the
    caller's unverified claim, and its holder is told instead of a link being sent."""
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    bob = await sign_up(client, "bob")
    carol = await sign_up(client, "carol")

    taken = await change_email(client, bob, "ALICE@example.com", bob.password)
    free = await change_email(client, carol, "carol@example.com", carol.password)

    assert taken.status_code == free.status_code == 204
    assert await taken.get_data() == await free.get_data()
    body = await me(client, bob)
    assert (body["email"], body["email_verified"]) == ("ALICE@example.com", False)
    notice = await mailbox.next("alice@example.com")
    assert '"bob"' in text_of(notice)
    assert "#token=" not in text_of(notice)
    link_token(await mailbox.next("carol@example.com"), "/verify-email")
    await mailbox.settle()
    assert await mailbox.queued("ALICE@example.com") == 0


async def test_resending_for_a_taken_address_tells_its_holder_instead(
    client: Client, mailbox: Mailbox
) -> None:
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    bob = await sign_up(client, "bob")
    assert (await change_email(client, bob, "alice@example.com", bob.password)).status_code == 204
    await mailbox.next("alice@example.com")  # the notice of the change

    response = await client.post("/me/email/resend", headers=bob.headers)

    assert response.status_code == 202
    notice = await mailbox.next("alice@example.com")
    assert "#token=" not in text_of(notice)


async def test_the_same_address_in_other_case_keeps_it_verified(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")
    assert (await client.post("/verify-email", json={"token": token})).status_code == 204

    response = await change_email(client, alice, "ALICE@example.com", alice.password)

    assert response.status_code == 204
    body = await me(client, alice)
    assert (body["email"], body["email_verified"]) == ("ALICE@example.com", True)
    assert await mailbox.queued("alice@example.com") == 1  # the first link only


async def test_adding_an_address_to_an_account_without_one(
    client: Client, alice: Account, mailbox: Mailbox
) -> None:
    response = await change_email(client, alice, "alice@example.com", alice.password)

    assert response.status_code == 204
    token = link_token(await mailbox.next("alice@example.com"), "/verify-email")
    assert (await client.post("/verify-email", json={"token": token})).status_code == 204


async def test_the_address_change_needs_a_live_session(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    await client.post("/logout", headers=alice.headers)

    response = await change_email(client, alice, "new@example.com", alice.password)

    await assert_problem(response, 401)
    assert await mailbox.queued("new@example.com") == 0


async def test_the_address_can_be_reused_after_the_account_is_deleted(
    client: Client, mailbox: Mailbox
) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")
    assert (await client.delete("/me", headers=alice.headers)).status_code == 204

    await sign_up_with_email(client, "alice2", "alice@example.com", NEW_PASSWORD)


async def test_links_mailed_for_one_account_are_limited(client: Client, mailbox: Mailbox) -> None:
    alice = await sign_up_with_email(client, "alice", "alice@example.com")

    statuses = [
        (await change_email(client, alice, f"a{n}@example.com", alice.password)).status_code
        for n in range(6)
    ]

    assert statuses == [204] * 5 + [429]
    assert (await me(client, alice))["email"] == "a4@example.com"  # the refused one changed nothing
    assert await mailbox.queued("a5@example.com") == 0
