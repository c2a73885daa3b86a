"""Mail limits punish the sender of requests, not the owner of the address: requests that send
nothing spend nothing, anonymous quotas are per address *and* client network, the owner's own
resends have their own bucket, and a taken address spends what a free one does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.config import Settings
from tests.email_helpers import (
    PASSWORD,
    assert_problem,
    link_token,
    sign_up_verified,
    sign_up_with_email,
    text_of,
)
from tests.helpers import AppFactory, app_factory, make_settings, sign_up
from tests.mailbox import Mailbox, mail_settings
from tests.smtp_server import SmtpServer

ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"
LIMIT = 5  # EMAIL_REQUESTS_PER_HOUR's default
VERIFY = "/verify-email"
RESET = "/password/reset"


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    """The app mails through its own sender to the test's SMTP server."""
    return make_settings(database_url, **mail_settings(smtp_server))


def coming_from(address: str) -> dict[str, Any]:
    return {"scope_base": {"client": (address, 40000)}}


async def signup(client: Client, username: str, email: str, client_address: str) -> int:
    response = await client.post(
        "/signup",
        json={"username": username, "password": PASSWORD, "email": email},
        **coming_from(client_address),
    )
    return response.status_code


async def test_signups_that_send_nothing_spend_nothing(client: Client, mailbox: Mailbox) -> None:
    """Signups refused for their username send no mail, so they spend no mail quota: the
    victim's own signup, from the very same network, still gets its link."""
    await sign_up(client, "taken")
    statuses = [await signup(client, "taken", "victim@example.com", ATTACKER) for _ in range(8)]

    assert statuses == [409] * 8
    assert await signup(client, "victim", "victim@example.com", ATTACKER) == 201
    link_token(await mailbox.next("victim@example.com"), VERIFY)


async def test_a_flood_from_one_network_never_stops_the_owner(
    client: Client, mailbox: Mailbox
) -> None:
    """The flood is refused where it comes from (429, nothing written); the owner signs up
    from elsewhere, gets the link and confirms the address."""
    statuses = [
        await signup(client, f"spam{n}", "victim@example.com", ATTACKER) for n in range(LIMIT + 1)
    ]

    assert statuses == [201] * LIMIT + [429]
    refused = await client.post("/login", form={"username": f"spam{LIMIT}", "password": PASSWORD})
    assert refused.status_code == 400  # the refused signup made no account
    assert await signup(client, "victim", "victim@example.com", OWNER) == 201
    for _ in range(LIMIT):
        await mailbox.next("victim@example.com")  # the flood's links
    token = link_token(await mailbox.next("victim@example.com"), VERIFY)
    assert (await client.post(VERIFY, json={"token": token})).status_code == 204


async def test_the_owners_resends_have_their_own_bucket(client: Client, mailbox: Mailbox) -> None:
    """Anonymous signups have spent the address's quota on the owner's network too; the
    owner's resends count on the account alone."""
    statuses = [
        await signup(client, f"spam{n}", "victim@example.com", OWNER) for n in range(LIMIT + 1)
    ]
    assert statuses[-1] == 429
    victim = await sign_up_with_email(client, "victim", "victim@example.com")  # another network

    resent = [
        (await client.post("/me/email/resend", headers=victim.headers)).status_code
        for _ in range(LIMIT)
    ]

    assert resent == [202] * LIMIT


async def test_reset_requests_from_one_network_never_stop_the_owners_reset(
    client: Client, mailbox: Mailbox
) -> None:
    """Nor do signups with the address: resets have a quota of their own."""
    await sign_up_verified(client, mailbox, "victim", "victim@example.com")
    for n in range(LIMIT + 1):
        await signup(client, f"spam{n}", "victim@example.com", OWNER)
    flood = [
        (
            await client.post(
                "/password/forgot", json={"email": "victim@example.com"}, **coming_from(ATTACKER)
            )
        ).status_code
        for _ in range(LIMIT + 1)
    ]
    assert flood == [202] * LIMIT + [429]

    own = await client.post(
        "/password/forgot", json={"email": "victim@example.com"}, **coming_from(OWNER)
    )

    assert own.status_code == 202
    await mailbox.settle()
    for _ in range(LIMIT):
        await mailbox.next("victim@example.com", containing=RESET + "#token=")
    link_token(await mailbox.next("victim@example.com", containing=RESET + "#token="), RESET)


async def test_a_taken_address_spends_what_a_free_one_does(
    client: Client, mailbox: Mailbox
) -> None:
    """The 429 comes at the same request whether or not an account has verified the address,
    so it tells nothing either."""
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")

    taken = [
        await signup(client, f"taker{n}", "alice@example.com", ATTACKER) for n in range(LIMIT + 1)
    ]
    free = [
        await signup(client, f"freer{n}", "free@example.com", ATTACKER) for n in range(LIMIT + 1)
    ]

    assert taken == free == [201] * LIMIT + [429]


async def test_notices_to_a_holder_are_limited_whoever_asks(
    client: Client, mailbox: Mailbox
) -> None:
    """Signups from many networks each stay within their own quota, yet the holder gets at most
    ``EMAIL_REQUESTS_PER_HOUR`` notices an hour; the rest are dropped, not refused."""
    await sign_up_verified(client, mailbox, "alice", "alice@example.com")

    statuses = [
        await signup(client, f"mallory{n}", "alice@example.com", f"192.0.2.{n}") for n in range(8)
    ]

    assert statuses == [201] * 8
    notices = [await mailbox.next("alice@example.com") for _ in range(LIMIT)]
    assert all("#token=" not in text_of(notice) for notice in notices)
    await mailbox.settle()
    assert await mailbox.queued("alice@example.com") == 1 + LIMIT  # her link, the notices


@pytest.fixture
async def make_app(database_url: str, smtp_server: SmtpServer) -> AsyncIterator[AppFactory]:
    async with app_factory(database_url, mail_settings(smtp_server)) as build:
        yield build


async def test_refused_logins_mail_a_few_links_at_most(
    make_app: AppFactory, mailbox_for: Callable[[Quart], Mailbox]
) -> None:
    """With ``REQUIRE_VERIFIED_EMAIL`` each refused login asks for a link, on the account's
    own quota: beyond it the 403 stays and nothing more is mailed."""
    app = await make_app(require_verified_email=True)
    mailbox = mailbox_for(app)
    client = app.test_client()
    assert await signup(client, "alice", "alice@example.com", OWNER) == 201

    for _ in range(LIMIT + 3):
        refused = await client.post("/login", form={"username": "alice", "password": PASSWORD})
        await assert_problem(refused, 403)

    await mailbox.settle()
    assert await mailbox.queued("alice@example.com") == 1 + LIMIT  # the signup's, then LIMIT
