"""A signup or an address change takes as long with an address another account has verified
as with a free one.

The answers are already identical (``test_email_accounts.py``); otherwise the answer time would
tell which addresses have accounts. What differs (a link, or a notice to the holder) is done
after the answer, so each request is timed alone: the work left over from the previous one is
waited for first. As in the login timing test, bcrypt runs at 10 rounds (~60 ms), as the
signup's hash and the address change's password check do on both paths, and the medians must
be within 50%: the test catches a path that skips that work (a made-up answer for a taken
address) or adds a lookup or a message before the answer, not scheduling noise.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import update

from service.config import Settings
from service.db.models import User
from service.services import services
from tests.email_helpers import PASSWORD, sign_up_with_email
from tests.helpers import make_settings, sign_up
from tests.mailbox import Mailbox

pytestmark = pytest.mark.serial  # compares durations

TRIES = 10


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Many messages for one address: no limit may answer instead. No mail sender runs (the
    # test default): its delivery of one request's message would overlap the next's timing.
    return make_settings(
        database_url,
        bcrypt_rounds=10,
        email_requests_per_hour=10_000,
        auth_requests_per_minute=0,
    )


async def holder_of(app: Quart, client: Client, email: str) -> None:
    """An account that has verified ``email``."""
    await sign_up_with_email(client, "holder", email)
    async with services(app).db.write() as db:
        await db.run(update(User).values(email_verified_at=datetime.now(UTC)))


def assert_alike(taken: list[float], free: list[float]) -> None:
    fast, slow = sorted([statistics.median(taken), statistics.median(free)])
    assert slow <= fast * 1.5, f"taken {taken}, free {free}"


async def test_a_signup_with_a_taken_address_takes_as_long_as_with_a_free_one(
    app: Quart, client: Client, mailbox: Mailbox
) -> None:
    await holder_of(app, client, "taken@example.com")

    async def timed(username: str, email: str) -> float:
        await mailbox.settle()  # the previous request's message is not charged to this one
        started = time.perf_counter()
        response = await client.post(
            "/signup", json={"username": username, "password": PASSWORD, "email": email}
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 201
        return elapsed

    await timed("warmup1", "taken@example.com")
    await timed("warmup2", "free-warmup@example.com")
    taken, free = [], []
    for attempt in range(TRIES):
        taken.append(await timed(f"taken{attempt}", "taken@example.com"))
        free.append(await timed(f"free{attempt}", f"free{attempt}@example.com"))

    assert_alike(taken, free)


async def test_a_change_to_a_taken_address_takes_as_long_as_to_a_free_one(
    app: Quart, client: Client, mailbox: Mailbox
) -> None:
    await holder_of(app, client, "taken@example.com")
    bob = await sign_up(client, "bob")

    async def timed(email: str) -> float:
        await mailbox.settle()
        started = time.perf_counter()
        response = await client.post(
            "/me/email",
            json={"email": email, "current_password": bob.password},
            headers=bob.headers,
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 204
        return elapsed

    await timed("taken@example.com")
    await timed("free-warmup@example.com")
    taken, free = [], []
    for attempt in range(TRIES):
        taken.append(await timed("taken@example.com"))
        free.append(await timed(f"free{attempt}@example.com"))

    assert_alike(taken, free)
