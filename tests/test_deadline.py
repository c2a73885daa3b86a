"""One database deadline per request (``service/db/deadline.py``): every wait shares it.

A request gets ``DB_STATEMENT_TIMEOUT`` seconds of database time in all; each statement, each
wait for a pooled or a lane connection and SQLite's wait for the write lock gets what is left,
so calls that each fit the timeout cannot add up beyond it. Outside a request calls keep
their own bounds. ``tests/test_database_faults.py`` checks the same against a frozen server.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from quart import Quart
from sqlalchemy import bindparam, delete, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service import create_app
from service.config import Settings
from service.db import Database, Reader, deadline
from service.db.fast.live_sessions import CHANNEL, notice
from service.db.models import Item, User
from service.items import queries as item_queries
from service.services import services
from tests.helpers import AppFactory, app_factory, sign_up

pytestmark = pytest.mark.serial  # bounds waits from above

#: The statement timeout of these tests' apps, seconds.
TIMEOUT = 1.0
#: A statement that fits the timeout; two of them do not.
NAP = 0.6
#: Well below ``TIMEOUT``: the second nap only gets what the first left (about 0.4 s).
PROMPT = 0.8
_SELECT_USER = select(User.id).where(User.id == bindparam("user_id"))


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    async with app_factory(database_url, {"db_statement_timeout": TIMEOUT}) as build:
        yield build


def database(app: Quart) -> Database:
    return services(app).db


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_statements_that_each_fit_the_timeout_share_one_deadline(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = await make_app()
    client = app.test_client()
    account = await sign_up(client, f"naps-{uuid.uuid4().hex[:6]}")
    real_page = item_queries.select_items_page

    def napping(naps: int) -> Any:
        async def page(db: Reader, *args: Any) -> Any:
            for _ in range(naps):
                await db.scalar(text(f"SELECT pg_sleep({NAP})"))
            return await real_page(db, *args)

        return page

    monkeypatch.setattr(item_queries, "select_items_page", napping(2))
    started = time.monotonic()
    response = await client.get("/items", headers=account.headers)
    waited = time.monotonic() - started
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert TIMEOUT - 0.1 < waited < TIMEOUT + 0.5
    assert errors_logged(caplog) == []

    # Each request has a deadline of its own, and the pool lost nothing.
    monkeypatch.setattr(item_queries, "select_items_page", napping(1))
    for _ in range(2):
        assert (await client.get("/items", headers=account.headers)).status_code == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_write_that_runs_out_of_time_is_rolled_back(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = await make_app()
    db = database(app)
    account = await sign_up(app.test_client(), f"writer-{uuid.uuid4().hex[:6]}")
    item = {"id": uuid.uuid4(), "owner_id": uuid.UUID(account.id), "name": "half-written"}

    async def insert_and_nap_twice() -> None:
        async with db.write() as writer:
            await writer.run(insert(Item).values(**item))
            await writer.scalar(text(f"SELECT pg_sleep({NAP})"))
            await writer.scalar(text(f"SELECT pg_sleep({NAP})"))

    started = time.monotonic()
    with deadline.budget(TIMEOUT), pytest.raises(OperationalError) as raised:
        await insert_and_nap_twice()
    assert time.monotonic() - started < TIMEOUT + 0.5
    assert isinstance(raised.value.orig, TimeoutError)
    assert raised.value.connection_invalidated
    assert errors_logged(caplog) == []
    async with db.read() as reader:
        assert await reader.scalar(select(func.count()).select_from(Item)) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("where", ["read lane", "own connection"])
async def test_a_planned_read_gets_what_the_request_has_left(
    make_app: AppFactory, database_url: str, where: str
) -> None:
    db = database(await make_app())

    async def planned_read(reader: Reader) -> None:
        if where == "read lane":  # a block of its own, with no connection checked out
            async with db.read() as fresh:
                await fresh.first(_SELECT_USER, {"user_id": uuid.uuid4()})
        else:  # on the block's own connection, after a statement of another kind
            await reader.first(_SELECT_USER, {"user_id": uuid.uuid4()})

    locker = await asyncpg.connect(database_url)
    try:
        with deadline.budget(TIMEOUT):
            async with db.read() as reader:
                await reader.scalar(text(f"SELECT pg_sleep({NAP})"))
                await locker.execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                with pytest.raises(OperationalError) as raised:
                    await planned_read(reader)
                waited = time.monotonic() - started
        await locker.execute("ROLLBACK")
    finally:
        await locker.close()
    assert waited < PROMPT
    assert isinstance(raised.value.orig, TimeoutError)
    assert raised.value.connection_invalidated
    async with db.read() as reader:
        assert await reader.first(_SELECT_USER, {"user_id": uuid.uuid4()}) is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_outside_a_request_each_call_keeps_its_own_bound(make_app: AppFactory) -> None:
    """The command line, the mail sender and the listener run without a request's deadline."""
    db = database(await make_app())
    async with db.read() as reader:
        for _ in range(2):
            await reader.scalar(text(f"SELECT pg_sleep({NAP})"))
    async with db.write() as writer:
        for _ in range(2):
            await writer.scalar(text(f"SELECT pg_sleep({NAP})"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_write_waits_for_its_announcement_no_longer_than_the_request_has_left(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A revoking write waits up to ``ANNOUNCE_WAIT`` (1 s) for its own listener to hear its
    notice; a listener that never does (stood in for here) holds it only while the request
    has time left."""
    app = await make_app(database_fast_path=True)  # the listener is the fast path's
    listener = services(app).session_listener
    assert listener is not None
    waits: list[float] = []

    async def never_heard(_payload: str, within: float) -> bool:
        waits.append(within)
        await asyncio.sleep(within)
        return False

    monkeypatch.setattr(listener, "heard", never_heard)
    started = time.monotonic()
    with deadline.budget(0.3):
        async with database(app).write() as writer:
            await writer.announce(CHANNEL, notice(uuid.uuid4()))
    assert time.monotonic() - started < PROMPT
    assert len(waits) == 1
    assert 0 < waits[0] <= 0.3


@pytest.fixture
async def one_connection(make_app: AppFactory) -> AsyncIterator[Quart]:
    """An app whose pool has one connection (no read lane) and a long ``DB_POOL_TIMEOUT``,
    with that connection held by someone else."""
    app = await make_app(db_pool_size=1, db_pool_timeout=5)
    async with database(app).engine.connect() as held:
        await held.execute(text("SELECT 1"))
        yield app


async def test_a_wait_for_a_pooled_connection_ends_with_the_requests_time(
    one_connection: Quart,
) -> None:
    started = time.monotonic()
    with deadline.budget(0.3), pytest.raises(PoolTimeoutError):
        async with database(one_connection).write():
            pass
    assert time.monotonic() - started < PROMPT


async def test_readyz_answers_within_a_second_when_no_connection_is_free(
    one_connection: Quart,
) -> None:
    started = time.monotonic()
    response = await one_connection.test_client().get("/readyz")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert (await response.get_json())["status"] == 503
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_wait_for_a_lane_connection_ends_with_the_requests_time(
    make_app: AppFactory, database_url: str
) -> None:
    # A lane of two; the two reads kept waiting have no deadline but this long timeout.
    db = database(
        await make_app(
            database_fast_path=True, db_pool_size=4, db_pool_timeout=5, db_statement_timeout=5
        )
    )
    locker = await asyncpg.connect(database_url)
    try:
        await locker.execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")

        async def stuck() -> None:
            async with db.read() as reader:
                await reader.first(_SELECT_USER, {"user_id": uuid.uuid4()})

        both = [asyncio.create_task(stuck()) for _ in range(2)]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        with deadline.budget(0.3), pytest.raises(PoolTimeoutError):
            async with db.read() as reader:
                await reader.first(_SELECT_USER, {"user_id": uuid.uuid4()})
        waited = time.monotonic() - started
        await locker.execute("ROLLBACK")
        await asyncio.gather(*both)
    finally:
        await locker.close()
    assert waited < PROMPT


@pytest.fixture
def other_writer(database_url: str) -> Iterator[sqlite3.Connection]:
    """Another connection to the SQLite file, as another process's would be."""
    path = make_url(database_url).database
    assert path is not None
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_sqlite_writer_waits_for_the_lock_no_longer_than_the_request_has_left(
    make_app: AppFactory, other_writer: sqlite3.Connection
) -> None:
    """The first write waits 0.6 s for the lock another process holds; the second write
    finds it taken again and may wait only the 0.4 s left, not ``busy_timeout`` (1 s)."""
    db = database(await make_app())
    user = {"username": "locked", "username_key": "locked", "password_hash": "x"}
    with deadline.budget(TIMEOUT):
        other_writer.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(NAP, other_writer.execute, "ROLLBACK")
        async with db.write() as writer:
            await writer.run(insert(User).values(id=uuid.uuid4(), **user))
        other_writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            async with db.write() as writer:
                await writer.run(delete(User))
        waited = time.monotonic() - started
        other_writer.execute("ROLLBACK")
    assert waited < PROMPT
    # The next write, on a budget of its own, waits the full busy_timeout again.
    other_writer.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(NAP, other_writer.execute, "ROLLBACK")
    with deadline.budget(TIMEOUT):
        async with db.write() as writer:
            assert await writer.run(delete(User)) == 1


def test_each_request_gets_its_deadline_before_the_bearer_check(settings: Settings) -> None:
    """The deadline starts before the first hook that can ask the database."""
    hooks = [hook.__name__ for hook in create_app(settings).before_request_funcs[None]]
    start = hooks.index("start_database_deadline")
    assert start < hooks.index("require_bearer_under_protected_prefixes")
