"""Asking for a reset link takes as long for an address no account has as for a known one.

Otherwise the answer time would tell which addresses have accounts (the bodies are already
identical, ``test_password_reset.py``). Each request is timed alone: the work left over from
the previous one (the lookup and the queued message, done after the answer) is waited for
first.
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
from tests.email_helpers import sign_up_with_email
from tests.helpers import make_settings
from tests.mailbox import Mailbox

#: It compares times: no other test may load the machine meanwhile (tests/parallel.py).
pytestmark = pytest.mark.serial


async def forgot(client: Client, email: str) -> int:
    response = await client.post("/password/forgot", json={"email": email})
    return response.status_code


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The timing test asks many times for one address: no limit may answer instead. No mail
    # sender runs (the test default): its delivery of one request's message would overlap
    # the next request's timing, for known addresses only.
    return make_settings(database_url, email_requests_per_hour=10_000, auth_requests_per_minute=0)


async def timed_forgot(client: Client, email: str, mailbox: Mailbox) -> float:
    await mailbox.settle()  # the previous request's work is not charged to this one
    started = time.perf_counter()
    status = await forgot(client, email)
    elapsed = time.perf_counter() - started
    assert status == 202
    return elapsed


async def test_known_and_unknown_addresses_take_about_the_same_time(
    app: Quart, client: Client, mailbox: Mailbox
) -> None:
    """The tolerance is wide (medians within 50% plus 5 ms): it catches a lookup or a message
    done before the answer for known addresses only, not scheduling noise."""
    await sign_up_with_email(client, "alice", "alice@example.com")
    async with services(app).db.write() as db:  # only a verified address gets a link
        await db.run(update(User).values(email_verified_at=datetime.now(UTC)))
    await timed_forgot(client, "alice@example.com", mailbox)
    await timed_forgot(client, "nobody@example.com", mailbox)

    known, unknown = [], []
    for attempt in range(10):
        known.append(await timed_forgot(client, "alice@example.com", mailbox))
        unknown.append(await timed_forgot(client, f"nobody{attempt}@example.com", mailbox))

    fast, slow = sorted([statistics.median(known), statistics.median(unknown)])
    assert slow <= fast * 1.5 + 0.005, f"known {known}, unknown {unknown}"
