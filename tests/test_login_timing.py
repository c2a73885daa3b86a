"""A login for an unknown user takes about as long as one with a wrong password.

Otherwise the answer time would tell an attacker which usernames exist (the bodies are already
identical). bcrypt runs at 10 rounds here (~60 ms) so that hashing dominates the request, and
the two kinds of attempt alternate so that load from other processes hits both alike. The
tolerance is wide (medians within 50%): the test catches a skipped hash (a 10x difference),
not small noise.
"""

from __future__ import annotations

import statistics
import time

import pytest
from quart.typing import TestClientProtocol as Client

from service.config import Settings
from tests.helpers import make_settings, sign_up

TRIES = 10
#: It compares times: no other test may load the machine meanwhile (tests/parallel.py).
pytestmark = pytest.mark.serial


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        bcrypt_rounds=10,
        # Twenty failures in a row must not run into the brute-force limits.
        login_failures_per_username=100_000,
        login_failures_per_address=100_000,
        login_failures_per_device=100_000,  # the client keeps alice's device cookie
        auth_requests_per_minute=0,
    )


async def timed_login(client: Client, username: str, password: str) -> float:
    started = time.perf_counter()
    response = await client.post("/login", form={"username": username, "password": password})
    elapsed = time.perf_counter() - started
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_grant"
    return elapsed


async def test_unknown_user_and_wrong_password_take_about_the_same_time(
    client: Client,
) -> None:
    await sign_up(client, "alice", "the-right-passphrase")
    await timed_login(client, "alice", "warm-up-guess")  # first-request costs out of the way
    await timed_login(client, "nobody", "warm-up-guess")

    unknown, wrong = [], []
    for attempt in range(TRIES):
        unknown.append(await timed_login(client, f"nobody{attempt}", "a-wrong-guess"))
        wrong.append(await timed_login(client, "alice", "a-wrong-guess"))

    fast, slow = sorted([statistics.median(unknown), statistics.median(wrong)])
    assert slow <= fast * 1.5, f"unknown user {unknown}, wrong password {wrong}"
