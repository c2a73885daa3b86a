"""Claims on an address: unverified claims never block its owner, the first to verify wins and
the others lose it (and are told), a changed address is unverified until its link is used."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from service.config import Settings
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

VERIFY = "/verify-email"
RESET = "/password/reset"


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    """The app mails through its own sender to the test's SMTP server."""
    return make_settings(database_url, **mail_settings(smtp_server))


async def verify(client: Client, token: str) -> Any:
    return await client.post(VERIFY, json={"token": token})


async def change_email(client: Client, account: Account, email: str) -> Any:
    return await client.post(
        "/me/email",
        json={"email": email, "current_password": account.password},
        headers=account.headers,
    )


async def test_an_unverified_claim_never_blocks_the_owner(client: Client, mailbox: Mailbox) -> None:
    """Mallory gives the victim's address and never confirms it. The owner still signs up with
    it, confirms it and so takes it from mallory; a reset then leads into the owner's account,
    never into mallory's."""
    mallory = await sign_up_with_email(client, "mallory", "victim@example.com")
    mallorys_link = link_token(await mailbox.next("victim@example.com"), VERIFY)

    victim = await sign_up_with_email(client, "victim", "victim@example.com", NEW_PASSWORD)
    own_link = link_token(await mailbox.next("victim@example.com"), VERIFY)
    assert (await verify(client, own_link)).status_code == 204

    assert (await me(client, victim))["email_verified"] is True
    assert (await me(client, mallory))["email"] is None  # the claim is gone
    await assert_problem(await verify(client, mallorys_link), 400)
    told = await mailbox.next("victim@example.com")
    assert told["Subject"] == "Other accounts no longer use your email address"
    assert "mallory" in text_of(told)
    assert (await client.post("/password/forgot", json={"email": "victim@example.com"})).status_code
    reset = link_token(await mailbox.next("victim@example.com", containing=RESET), RESET)
    response = await client.post(RESET, json={"token": reset, "new_password": "owner-chose-this"})
    assert response.status_code == 204
    await log_in(client, "victim", "owner-chose-this")
    await log_in(client, "mallory", PASSWORD)  # untouched


async def test_the_first_to_verify_wins_and_the_others_lose_the_address(
    client: Client, mailbox: Mailbox, security_events: list[logging.LogRecord]
) -> None:
    alice = await sign_up_with_email(client, "alice", "shared@example.com")
    alices_link = link_token(await mailbox.next("shared@example.com", "Hello alice,"), VERIFY)
    bob = await sign_up_with_email(client, "bob", "shared@example.com")
    carol = await sign_up_with_email(client, "carol", "shared@example.com")
    # The sender may deliver bob's and carol's links in either order: pick each by its greeting.
    bobs_link = link_token(await mailbox.next("shared@example.com", "Hello bob,"), VERIFY)
    await mailbox.next("shared@example.com", "Hello carol,")

    service_log = logging.getLogger("service")
    level = service_log.level
    service_log.setLevel(logging.INFO)  # the events are INFO
    try:
        assert (await verify(client, bobs_link)).status_code == 204
    finally:
        service_log.setLevel(level)

    assert (await me(client, bob))["email_verified"] is True
    for loser in (alice, carol):
        assert (await me(client, loser))["email"] is None
    await assert_problem(await verify(client, alices_link), 400)
    told = text_of(await mailbox.next("shared@example.com"))
    assert "alice" in told
    assert "carol" in told
    ended = [r for r in security_events if r.getMessage().startswith("email_claim_ended")]
    assert len(ended) == 2


async def test_a_later_claim_of_a_verified_address_cannot_take_it(
    client: Client, mailbox: Mailbox
) -> None:
    """A claim made after the address was verified gets no link (its holder a notice), and a
    resend changes nothing: the holder keeps it."""
    alice = await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    mallory = await sign_up_with_email(client, "mallory", "alice@example.com")
    assert (await client.post("/me/email/resend", headers=mallory.headers)).status_code == 202

    for _ in range(2):
        assert "#token=" not in text_of(await mailbox.next("alice@example.com"))
    assert (await me(client, alice))["email_verified"] is True
    assert (await me(client, mallory))["email_verified"] is False


@pytest.mark.parametrize("rounds", [3])
async def test_of_two_simultaneous_verifications_of_one_address_exactly_one_wins(
    client: Client, mailbox: Mailbox, rounds: int
) -> None:
    """Two accounts follow their links to one address at the same moment: one 204, one 400,
    one verified address, and the other account without it (on PostgreSQL the rows of the
    address are locked in one order, so neither deadlocks nor slips past the other)."""
    for number in range(rounds):
        address = f"race{number}@example.com"
        first = await sign_up_with_email(client, f"first{number}", address)
        second = await sign_up_with_email(client, f"second{number}", address)
        tokens = [link_token(await mailbox.next(address), VERIFY) for _ in range(2)]

        answers = await asyncio.gather(*(verify(client, token) for token in tokens))

        assert sorted(answer.status_code for answer in answers) == [204, 400]
        states = [await me(client, account) for account in (first, second)]
        assert sorted(state["email_verified"] for state in states) == [False, True]
        assert sorted(str(state["email"]) for state in states) == ["None", address]


async def test_a_changed_address_is_unverified_until_its_link_is_used(
    client: Client, mailbox: Mailbox
) -> None:
    """``x@strasse.example`` to ``x@straße.example`` is a change of domain: the new address is
    unverified, the old one is told, and no reset link goes to either until the new one is
    confirmed; the old address is free for its owner."""
    alice = await sign_up_verified(client, mailbox, "alice", "x@strasse.example")

    assert (await change_email(client, alice, "x@straße.example")).status_code == 204

    body = await me(client, alice)
    assert (body["email"], body["email_verified"]) == ("x@xn--strae-oqa.example", False)
    assert "x@xn--strae-oqa.example" in text_of(await mailbox.next("x@strasse.example"))
    link = link_token(await mailbox.next("x@xn--strae-oqa.example"), VERIFY)
    for address in ("x@strasse.example", "x@straße.example"):
        response = await client.post("/password/forgot", json={"email": address})
        assert response.status_code == 202
    await mailbox.settle()
    assert await mailbox.queued("x@xn--strae-oqa.example") == 1  # the link only
    assert await mailbox.queued("x@strasse.example") == 2  # the signup's link, the notice
    owner = await sign_up_with_email(client, "owner", "x@strasse.example")
    link_token(await mailbox.next("x@strasse.example"), VERIFY)  # a link, not a notice
    assert (await verify(client, link)).status_code == 204
    await client.post("/password/forgot", json={"email": "x@straße.example"})
    link_token(await mailbox.next("x@xn--strae-oqa.example", containing=RESET), RESET)
    assert (await me(client, owner))["email_verified"] is False


async def test_an_account_that_lost_its_claim_can_give_another_address(
    client: Client, mailbox: Mailbox
) -> None:
    loser = await sign_up_with_email(client, "loser", "shared@example.com")
    await mailbox.next("shared@example.com")
    await sign_up_verified(client, mailbox, "winner", "shared@example.com")
    assert (await me(client, loser))["email"] is None

    assert (await change_email(client, loser, "mine@example.com")).status_code == 204

    token = link_token(await mailbox.next("mine@example.com"), VERIFY)
    assert (await verify(client, token)).status_code == 204
    await sign_up(client, "unrelated")
