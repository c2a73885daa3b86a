"""The read lane (``service/db/fast/read_lane.py``): planned reads borrow a few long-lived
PostgreSQL connections one statement at a time.

The lane's own rules (how many statements run at once, bounded waits, no slot lost to a
cancelled caller, ageing out) are asyncio logic and are tested on readers that wait for the
test's signal; what the service does with it (no pool checkout for an authenticated read, a
503 when the lane stays busy, recovery) is tested on a real PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service import create_app
from service.config import Settings
from service.db import Database
from service.db.fast.postgres import read_lane_size
from service.db.fast.read_lane import ReadLane
from tests.helpers import make_settings, sign_up


class GatedReader:
    """A slot reader whose statements finish when the test opens ``gate``."""

    def __init__(self, gate: asyncio.Event, log: list[str]) -> None:
        self.gate = gate
        self.log = log
        self.running = 0
        self.closed = False
        self.opened = time.monotonic()

    def outdated(self, recycle: float) -> bool:
        return time.monotonic() - self.opened > recycle

    async def run_plan(self, plan: Any, params: Mapping[str, Any]) -> Mapping[Any, Any] | None:
        self.running += 1
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        return {"ok": True}

    async def close(self) -> None:
        self.closed = True
        self.log.append("closed")


class Readers:
    """The readers a lane opened, in order."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.log: list[str] = []
        self.opened: list[GatedReader] = []

    async def connect(self) -> GatedReader:
        reader = GatedReader(self.gate, self.log)
        self.opened.append(reader)
        return reader

    @property
    def running(self) -> int:
        return sum(reader.running for reader in self.opened)


PLAN: Any = object()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_size_statements_run_at_once_and_every_one_finishes() -> None:
    readers = Readers()
    lane = ReadLane(readers.connect, size=2, wait=5, recycle=1800)
    reads = [asyncio.create_task(lane.run_plan(PLAN, {})) for _ in range(5)]
    await settle()
    assert readers.running == 2
    assert len(readers.opened) == 2
    readers.gate.set()
    assert await asyncio.gather(*reads) == [{"ok": True}] * 5
    assert len(readers.opened) == 2, "slots keep their connection between statements"


@pytest.mark.serial  # bounds a wait from both sides
async def test_a_wait_longer_than_the_pool_timeout_is_the_pools_timeout_error() -> None:
    readers = Readers()
    lane = ReadLane(readers.connect, size=1, wait=0.2, recycle=1800)
    busy = asyncio.create_task(lane.run_plan(PLAN, {}))
    await settle()
    started = time.monotonic()
    with pytest.raises(PoolTimeoutError):
        await lane.run_plan(PLAN, {})
    assert 0.15 < time.monotonic() - started < 1
    readers.gate.set()
    await busy
    assert await lane.run_plan(PLAN, {}) == {"ok": True}, "the slot came back"


async def test_cancelled_callers_never_take_a_slot_with_them() -> None:
    readers = Readers()
    lane = ReadLane(readers.connect, size=2, wait=5, recycle=1800)
    holders = [asyncio.create_task(lane.run_plan(PLAN, {})) for _ in range(2)]
    waiters = [asyncio.create_task(lane.run_plan(PLAN, {})) for _ in range(3)]
    await settle()
    for waiter in waiters:  # cancelled while waiting for a slot
        waiter.cancel()
    holders[0].cancel()  # cancelled mid-statement
    await settle()
    # a waiter handed a slot in the same turn as it is cancelled gives it back
    handed = asyncio.create_task(lane.run_plan(PLAN, {}))
    await settle()
    readers.gate.set()
    handed.cancel()
    await asyncio.gather(*holders, *waiters, handed, return_exceptions=True)
    assert readers.opened[0].closed, "the slot let the cancelled statement's connection go"

    readers.gate.clear()
    again = [asyncio.create_task(lane.run_plan(PLAN, {})) for _ in range(2)]
    await settle()
    assert readers.running == 2, "both slots are free again"
    readers.gate.set()
    await asyncio.gather(*again)


async def test_a_slot_hands_its_connection_back_after_the_recycle_time() -> None:
    readers = Readers()
    readers.gate.set()
    lane = ReadLane(readers.connect, size=1, wait=5, recycle=0.05)
    await lane.run_plan(PLAN, {})
    await asyncio.sleep(0.1)
    await lane.run_plan(PLAN, {})
    assert len(readers.opened) == 2
    assert readers.opened[0].closed
    assert not readers.opened[1].closed
    await lane.close()
    assert readers.opened[1].closed


def test_the_lane_takes_half_the_pool_at_most_four_and_none_of_a_small_pool() -> None:
    assert [read_lane_size(size) for size in (1, 3, 4, 5, 8, 10, 50)] == [0, 0, 2, 2, 4, 4, 4]


# --- on PostgreSQL -------------------------------------------------------------------------


def database(app: Quart) -> Database:
    db: Database = app.extensions["service"].db
    return db


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_authenticated_reads_check_nothing_out_of_the_pool(
    app: Quart, client: Client
) -> None:
    """After the lane has its connections, ``GET /items/{id}`` (a session check and a read,
    both planned) is two statements on lane connections and no pool checkout."""
    account = await sign_up(client, "lane")
    created = await client.post("/items", json={"name": "Book"}, headers=account.headers)
    path = f"/items/{(await created.get_json())['id']}"
    for _ in range(2):  # the lane opens its connections
        warm_up = await asyncio.gather(
            *(client.get(path, headers=account.headers) for _ in range(20))
        )
        assert {answer.status_code for answer in warm_up} == {200}

    checkouts: list[object] = []
    engine = database(app).engine.sync_engine
    listener = lambda *_args: checkouts.append(True)  # noqa: E731
    event.listen(engine, "checkout", listener)
    try:
        answers = await asyncio.gather(
            *(client.get(path, headers=account.headers) for _ in range(20))
        )
    finally:
        event.remove(engine, "checkout", listener)
    assert [answer.status_code for answer in answers] == [200] * 20
    assert checkouts == []


@pytest.fixture
async def small_lane(settings: Settings) -> AsyncIterator[Quart]:
    """The service with a lane of two (a pool of four), a short wait for a connection and
    every session check asking the database."""
    application = create_app(
        make_settings(
            settings.database_url, db_pool_size=4, db_pool_timeout=0.5, session_cache=False
        )
    )
    async with application.test_app():
        yield application


@pytest.mark.serial  # bounds a wait
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_lane_kept_busy_is_a_prompt_503_and_then_serves_again(
    small_lane: Quart, database_url: str
) -> None:
    """Both lane connections wait on a locked table: a third session check waits no longer
    than ``DB_POOL_TIMEOUT`` and gets 503 with Retry-After; once the lock goes, all is well."""
    client = small_lane.test_client()
    account = await sign_up(client, f"busy-{uuid.uuid4().hex[:6]}")
    assert (await client.get("/me", headers=account.headers)).status_code == 200

    locker = await asyncpg.connect(database_url)
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        stuck = [asyncio.create_task(client.get("/me", headers=account.headers)) for _ in range(2)]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        refused = await client.get("/me", headers=account.headers)
        waited = time.monotonic() - started
        await transaction.rollback()
    finally:
        await locker.close()

    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert waited < 2
    assert [answer.status_code for answer in await asyncio.gather(*stuck)] == [200, 200]
    assert (await client.get("/me", headers=account.headers)).status_code == 200


async def test_closing_lets_busy_connections_go_when_done_and_a_later_read_opens_anew() -> None:
    readers = Readers()
    lane = ReadLane(readers.connect, size=2, wait=5, recycle=1800)
    busy = asyncio.create_task(lane.run_plan(PLAN, {}))
    await settle()
    await lane.close()
    assert not readers.opened[0].closed, "a statement in flight keeps its connection"
    readers.gate.set()
    await busy
    await settle()
    assert readers.opened[0].closed, "handed back after the close"
    assert await lane.run_plan(PLAN, {}) == {"ok": True}, "the app may serve again"
    assert len(readers.opened) == 2
