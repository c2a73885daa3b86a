"""The memory of live sessions (``service/db/fast/live_sessions.py``) and its listener.

On PostgreSQL a worker answers the session check from memory while its listener is in
force; every revocation, on any instance, announces the account in its own transaction. These
tests attack the rule that matters: a revoked session is refused at once, on every instance,
whether the memory had it or not, whether the listener was connected or not. Two apps on one
database are two instances (each with its own memory and listener).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.db.fast.listener import Listener
from service.db.fast.live_sessions import LEASE, LiveSessions, notice
from service.services import Services, services
from tests.helpers import AppFactory, sign_up
from tests.session_helpers import another_login, assert_access_refused, assert_access_works, bearer

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=15)


def listening_memory(ttl: float = 60.0, size: int = 100, lease: float = 60.0) -> LiveSessions:
    memory = LiveSessions(ttl=ttl, size=size, lease=lease)
    memory.started_listening()
    memory.proven()
    return memory


def test_a_session_read_before_a_notice_is_not_remembered() -> None:
    memory = listening_memory()
    session, user = uuid.uuid4(), uuid.uuid4()
    epoch = memory.epoch  # a request takes the epoch, then reads the database...
    memory.revoked(str(user))  # ...while a revocation's notice arrives
    memory.remember(session, user, LATER, epoch)
    assert not memory.knows_live(session, user, NOW)


def test_a_notice_forgets_that_accounts_sessions_only() -> None:
    memory = listening_memory()
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_sessions = [uuid.uuid4(), uuid.uuid4()]
    bob_session = uuid.uuid4()
    for session in alice_sessions:
        memory.remember(session, alice, LATER, memory.epoch)
    memory.remember(bob_session, bob, LATER, memory.epoch)
    memory.revoked(notice(alice))
    assert not any(memory.knows_live(session, alice, NOW) for session in alice_sessions)
    assert memory.knows_live(bob_session, bob, NOW)
    memory.revoked("not an account id")
    assert not memory.knows_live(bob_session, bob, NOW), "an unclear notice forgets all"


def test_nothing_is_answered_from_memory_while_not_listening() -> None:
    memory = LiveSessions(ttl=60)
    session, user = uuid.uuid4(), uuid.uuid4()
    memory.remember(session, user, LATER, memory.epoch)
    assert len(memory) == 0, "nothing is stored before the listener is in force"
    memory.started_listening()
    memory.remember(session, user, LATER, memory.epoch)
    assert not memory.knows_live(session, user, NOW), "listening, but nothing proved yet"
    memory.proven()
    assert memory.knows_live(session, user, NOW)
    epoch = memory.epoch
    memory.gap()
    assert not memory.knows_live(session, user, NOW)
    memory.started_listening()
    memory.proven()
    memory.remember(session, user, LATER, epoch)  # read during the gap
    assert not memory.knows_live(session, user, NOW)


def test_memory_answers_only_for_a_lease_after_each_proof() -> None:
    memory = listening_memory(lease=0.05)
    session, user = uuid.uuid4(), uuid.uuid4()
    memory.remember(session, user, LATER, memory.epoch)
    assert memory.knows_live(session, user, NOW)
    time.sleep(0.06)
    assert not memory.knows_live(session, user, NOW), "a listener that stopped proving"
    memory.proven()
    assert memory.knows_live(session, user, NOW), "nothing was forgotten: notices still come"


def test_an_entry_ends_with_its_session_its_ttl_and_the_size_bound() -> None:
    memory = listening_memory(ttl=0.05, size=2)
    user = uuid.uuid4()
    ending = uuid.uuid4()
    memory.remember(ending, user, NOW + timedelta(seconds=1), memory.epoch)
    assert not memory.knows_live(ending, user, NOW + timedelta(seconds=1))
    assert not memory.knows_live(uuid.uuid4(), user, NOW)
    other_owner = uuid.uuid4()
    memory.remember(other_owner, user, LATER, memory.epoch)
    assert not memory.knows_live(other_owner, uuid.uuid4(), NOW), "another account's token"
    sessions = [uuid.uuid4() for _ in range(3)]
    for session in sessions:
        memory.remember(session, user, LATER, memory.epoch)
    assert len(memory) == 2
    assert not memory.knows_live(sessions[0], user, NOW), "the least recently used went"
    time.sleep(0.06)
    assert not memory.knows_live(sessions[2], user, NOW), "past the ttl"


# --- two instances on one PostgreSQL database ----------------------------------------------

pytestmark_postgres = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def found(app: Quart) -> Services:
    return services(app)


async def until_listening(*apps: Quart) -> None:
    deadline = time.monotonic() + 10
    while not all(found(app).live_sessions.listening for app in apps):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the listeners did not start"
        await asyncio.sleep(0.02)


@pytest.mark.serial  # measures the window against the lease
@pytestmark_postgres
async def test_a_revocation_on_one_instance_is_refused_at_once_on_the_other(
    make_app: AppFactory,
) -> None:
    first, second = await make_app(), await make_app()
    await until_listening(first, second)
    on_first, on_second = first.test_client(), second.test_client()
    alice = await sign_up(on_first, f"two-{uuid.uuid4().hex[:6]}")
    phone = await another_login(on_first, alice)
    await assert_access_works(on_second, alice.access_token)
    await assert_access_works(on_second, phone.access_token)
    assert len(found(second).live_sessions) == 2  # type: ignore[arg-type]

    await on_first.post("/logout", json={"refresh_token": alice.refresh_token})
    await assert_access_refused(on_first, alice.access_token)  # the revoking instance: at once
    windows = [await until_refused(on_second, alice.access_token)]
    await assert_access_refused(on_second, alice.access_token)
    await assert_access_works(on_second, phone.access_token)

    assert (await on_first.delete("/me", headers=phone.headers)).status_code == 204
    windows.append(await until_refused(on_second, phone.access_token))
    await assert_access_refused(on_second, phone.access_token)
    assert max(windows) < LEASE, windows


async def until_refused(client: Client, access_token: str) -> float:
    """Seconds until ``client`` refuses the token: the window of a revocation made on another
    instance, which lasts until that instance's listener has the notice."""
    started = time.monotonic()
    while (await client.get("/me", headers=bearer(access_token))).status_code == 200:
        assert time.monotonic() - started < LEASE + 1, "the notice never came"
        await asyncio.sleep(0.001)
    return time.monotonic() - started


@pytestmark_postgres
async def test_a_remembered_session_skips_the_session_query(
    make_app: AppFactory, database_url: str
) -> None:
    """With the sessions table locked, a remembered session still gets its items at once."""
    app = await make_app()
    await until_listening(app)
    client = app.test_client()
    alice = await sign_up(client, f"hit-{uuid.uuid4().hex[:6]}")
    await assert_access_works(client, alice.access_token)
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            answer = await asyncio.wait_for(client.get("/items", headers=alice.headers), 2)
    finally:
        await locker.close()
    assert answer.status_code == 200


@pytestmark_postgres
async def test_without_its_listener_an_instance_asks_the_database_and_listens_again(
    make_app: AppFactory, database_url: str
) -> None:
    first, second = await make_app(), await make_app()
    await until_listening(first, second)
    on_first, on_second = first.test_client(), second.test_client()
    alice = await sign_up(on_first, f"gap-{uuid.uuid4().hex[:6]}")
    await assert_access_works(on_second, alice.access_token)

    admin = await asyncpg.connect(database_url)
    try:  # the listeners' connections end (a restart, a failover)
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database()"
            " AND (query LIKE 'LISTEN%' OR query = 'SELECT pg_notify($1, $2)')"
        )
    finally:
        await admin.close()
    assert ended >= 2
    deadline = time.monotonic() + 5
    while found(second).live_sessions.listening:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert len(found(second).live_sessions) == 0  # type: ignore[arg-type]

    # Not listening: the revocation is seen because the database is asked.
    await on_first.post("/logout", json={"refresh_token": alice.refresh_token})
    await assert_access_refused(on_second, alice.access_token)

    await until_listening(first, second)
    bob = await sign_up(on_first, f"back-{uuid.uuid4().hex[:6]}")
    await assert_access_works(on_second, bob.access_token)
    await on_first.post("/logout", json={"refresh_token": bob.refresh_token})
    await assert_access_refused(on_second, bob.access_token)


@pytestmark_postgres
async def test_session_cache_off_remembers_nothing(make_app: AppFactory) -> None:
    app = await make_app(session_cache=False)
    assert found(app).live_sessions is None
    client = app.test_client()
    alice = await sign_up(client, f"off-{uuid.uuid4().hex[:6]}")
    await assert_access_works(client, alice.access_token)


async def test_sqlite_has_no_memory_of_sessions(make_app: AppFactory, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the SQLite case")
    assert found(await make_app()).live_sessions is None


@pytest.mark.serial  # measures the window against the lease
@pytestmark_postgres
async def test_a_listener_whose_notices_stop_arriving_stops_memory_within_the_lease(
    make_app: AppFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled listener (a frozen backend, a pooler that drops LISTEN) proves nothing: a
    revocation whose notice never comes is refused within the lease, not the 60 s TTL."""
    deaf = False
    real_probed = Listener._probed

    def probed(self: Listener, *args: Any) -> None:
        if not deaf:
            real_probed(self, *args)

    monkeypatch.setattr(Listener, "_probed", probed)
    app = await make_app()
    await until_listening(app)
    client = app.test_client()
    alice = await sign_up(client, f"deaf-{uuid.uuid4().hex[:6]}")
    await assert_access_works(client, alice.access_token)
    assert len(found(app).live_sessions) == 1  # type: ignore[arg-type]

    deaf = True
    admin = await asyncpg.connect(database_url)
    try:  # ended behind the service's back: no notice comes
        await admin.execute("UPDATE sessions SET revoked_at = now()")
    finally:
        await admin.close()
    started = time.monotonic()
    while (await client.get("/me", headers=alice.headers)).status_code == 200:
        assert time.monotonic() - started < LEASE + 1, "memory outlived its lease"
        await asyncio.sleep(0.05)
