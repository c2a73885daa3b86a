"""The password-hashing pool: bounded, off the event loop, low priority, admission with 503, and
the same for unknown usernames as for known ones.

bcrypt itself is real; ``bcrypt.hashpw`` (what libpass calls for every hash and check) is
wrapped to record on which thread, at which scheduling policy and how many at once it runs.
Speed is measured by ``bench/storm.py``, never here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.security.passwords import HashingBusy, PasswordHasher, lower_priority
from service.services import services
from tests.helpers import AppFactory
from tests.test_rate_limits import PASSWORD, WRONG, login, make_app, sign_up

__all__ = ["make_app"]  # the fixture, shared with test_rate_limits


@dataclass
class BcryptCalls:
    """Every ``bcrypt.hashpw`` call: its thread, its scheduling policy, the most at once."""

    threads: list[threading.Thread] = field(default_factory=list)
    policies: list[int] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, hashpw: Callable[[bytes, bytes], bytes]) -> Callable[[bytes, bytes], bytes]:
        def recording(password: bytes, salt: bytes) -> bytes:
            with self.lock:
                self.threads.append(threading.current_thread())
                if hasattr(os, "sched_getscheduler"):
                    self.policies.append(os.sched_getscheduler(0))
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            try:
                return hashpw(password, salt)
            finally:
                with self.lock:
                    self.running -= 1

        return recording

    def clear(self) -> None:
        """Forget the calls so far (the dummy hash an app makes at start-up, on its own thread)."""
        self.threads.clear()
        self.policies.clear()


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> BcryptCalls:
    calls = BcryptCalls()
    monkeypatch.setattr(bcrypt, "hashpw", calls.wrap(bcrypt.hashpw))
    return calls


async def test_every_password_check_runs_on_a_hashing_thread_never_the_event_loop(
    make_app: AppFactory, bcrypt_calls: BcryptCalls
) -> None:
    app = await make_app()
    bcrypt_calls.clear()
    client = app.test_client()
    await sign_up(client, "alice")
    assert (await login(client, "alice", PASSWORD)).status_code == 200
    assert (await login(client, "alice", WRONG)).status_code == 400
    assert (await login(client, "nobody", WRONG)).status_code == 400
    token = (await (await login(client, "alice", PASSWORD)).get_json())["access_token"]
    changed = await client.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "another-passw0rd-42"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert changed.status_code == 204

    # signup, 2 good logins, a wrong password, an unknown user, the change (check + new hash)
    assert len(bcrypt_calls.threads) == 7
    loop_thread = threading.current_thread()
    assert all(thread is not loop_thread for thread in bcrypt_calls.threads)
    assert {thread.name.rsplit("_", 1)[0] for thread in bcrypt_calls.threads} == {"password-hash"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
async def test_hashing_threads_run_at_the_idle_scheduling_policy(
    make_app: AppFactory, bcrypt_calls: BcryptCalls
) -> None:
    client = (await make_app(password_hash_priority="idle")).test_client()
    bcrypt_calls.clear()
    await sign_up(client, "alice")
    assert (await login(client, "nobody", WRONG)).status_code == 400

    assert bcrypt_calls.policies == [os.SCHED_IDLE, os.SCHED_IDLE]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the event loop's thread is untouched


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no per-thread nice value here")
def test_low_priority_threads_get_the_highest_nice_value() -> None:
    niceness: list[int] = []

    def in_a_thread() -> None:
        lower_priority("low")
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert niceness == [19]


async def test_the_pool_runs_no_more_checks_at_once_than_it_has_threads(
    bcrypt_calls: BcryptCalls,
) -> None:
    hasher = PasswordHasher(rounds=6, threads=2, max_wait=60)
    bcrypt_calls.clear()
    try:
        hashes = await asyncio.gather(*(hasher.hash(f"password-{n}") for n in range(20)))
        assert len(set(hashes)) == 20
        assert bcrypt_calls.most_at_once <= 2
        assert len({thread.name for thread in bcrypt_calls.threads}) <= 2
        stats = hasher.stats()
        assert (stats.threads, stats.pending, stats.completed, stats.refused) == (2, 0, 20, 0)
    finally:
        hasher.close()


async def test_a_full_queue_refuses_at_once_with_the_expected_wait() -> None:
    hasher = PasswordHasher(rounds=12, threads=1, max_wait=0)
    try:
        busy = asyncio.create_task(hasher.hash("keeps-the-thread-busy"))
        await asyncio.sleep(0)  # the task is admitted and takes the one thread
        with pytest.raises(HashingBusy) as refused:
            await hasher.verify_nothing("a-guess")
        assert refused.value.retry_after >= 1
        await busy
        assert hasher.stats().refused == 1
        await hasher.verify_nothing("a-guess")  # the queue is empty again
    finally:
        hasher.close()


async def occupy(app: Quart) -> asyncio.Task[str]:
    """Start a check that holds the only hashing thread (bcrypt 12: a good part of a second)."""
    task = asyncio.create_task(services(app).passwords.hash("holds-the-one-thread"))
    await asyncio.sleep(0)
    return task


async def assert_busy(response: Any) -> None:
    assert response.status_code == 503, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    body = await response.get_json()
    assert body["status"] == 503
    assert PASSWORD not in str(body)


async def test_login_answers_503_with_retry_after_when_the_queue_is_longer_than_it_may_wait(
    make_app: AppFactory,
) -> None:
    app = await make_app(bcrypt_rounds=12, password_hash_threads=1, password_queue_wait=0)
    client = app.test_client()
    await sign_up(client, "alice")

    busy = await occupy(app)
    known = await login(client, "alice", PASSWORD)
    unknown = await login(client, "nobody", WRONG)
    signup = await client.post("/signup", json={"username": "bob", "password": PASSWORD})
    await busy

    for response in (known, unknown, signup):
        await assert_busy(response)
    # An unknown username is refused exactly as a known one: a 503 tells nothing either.
    assert await known.get_json() == await unknown.get_json()
    assert set(known.headers.keys()) == set(unknown.headers.keys())
    # Nothing was half-done: no account for bob; a refusal is not a failed password.
    assert (await login(client, "bob", PASSWORD)).status_code == 400
    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def test_refusals_are_not_counted_as_failed_passwords(make_app: AppFactory) -> None:
    app = await make_app(bcrypt_rounds=12, password_hash_threads=1, password_queue_wait=0)
    client = app.test_client()
    await sign_up(client, "alice")
    busy = await occupy(app)
    for _ in range(4):  # more than the 3 failures the username may have
        await assert_busy(await login(client, "alice", WRONG))
    await busy

    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def flood(client: Client, attempts: list[tuple[str, str, str]]) -> list[int]:
    """Logins (username, password, address) one after another; their statuses."""
    return [
        (await login(client, user, password, address)).status_code
        for user, password, address in attempts
    ]


async def test_unknown_usernames_buy_no_more_hashing_than_wrong_passwords_for_a_real_one(
    make_app: AppFactory, bcrypt_calls: BcryptCalls
) -> None:
    """3 failures per username and 5 per address (SMALL_LIMITS); 10 tries each way."""
    client = (await make_app()).test_client()
    for name in ("alice", "bob", "carol", "dave", "erin", "frank"):
        await sign_up(client, name)
    signups = len(bcrypt_calls.threads)

    def hashed() -> int:
        nonlocal signups
        count, signups = len(bcrypt_calls.threads) - signups, len(bcrypt_calls.threads)
        return count

    # One username, from ten addresses: the username limit stops both after 3 checks.
    real = await flood(client, [("alice", WRONG, f"192.0.2.{n}") for n in range(10)])
    real_hashed = hashed()
    unknown = await flood(client, [("nobody", WRONG, f"198.51.100.{n}") for n in range(10)])
    unknown_hashed = hashed()
    assert real == unknown == [400] * 3 + [429] * 7
    assert real_hashed == unknown_hashed == 3

    # Many usernames from one address: the address limit stops both after 5 checks.
    users = ["bob", "carol", "dave", "erin", "frank"] * 2
    real = await flood(client, [(name, WRONG, "203.0.113.1") for name in users])
    real_hashed = hashed()
    unknown = await flood(client, [(f"ghost{n}", WRONG, "203.0.113.2") for n in range(10)])
    unknown_hashed = hashed()
    assert real == unknown == [400] * 5 + [429] * 5
    assert real_hashed == unknown_hashed == 5
