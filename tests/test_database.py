"""The data layer (``service/db/``): transactions, and surviving the database's restarts.

PostgreSQL's connections are in autocommit mode for reads, so these tests make sure a
``write()`` block is still a real transaction there: invisible to readers until it commits,
and gone entirely when it fails. And when PostgreSQL drops every connection (a restart or a
failover), the next requests must still succeed, prepared reads and writes included, though
no connection is pinged when it leaves the pool. A request holds at most one connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, insert, select

from service import create_app
from service.config import Settings
from service.db import Database, Writer
from service.db.models import User
from tests.helpers import Account, make_settings, sign_up


def database(app: Quart) -> Database:
    db: Database = app.extensions["service"].db
    return db


async def add_user(writer: Writer, name: str) -> None:
    await writer.run(
        insert(User).values(
            id=uuid.uuid4(),
            username=name,
            username_key=name,
            password_hash="not-a-hash",
            created_at=datetime.now(UTC),
        )
    )


async def user_count(db: Database) -> int:
    async with db.read() as reader:
        count: int = await reader.scalar(select(func.count()).select_from(User))
    return count


async def test_a_write_is_invisible_to_readers_until_it_commits(app: Quart) -> None:
    db = database(app)
    async with db.write() as writer:
        await add_user(writer, "first")
        await add_user(writer, "second")
        assert await writer.scalar(select(func.count()).select_from(User)) == 2
        assert await user_count(db) == 0
    assert await user_count(db) == 2


async def test_a_failed_write_leaves_nothing(app: Quart) -> None:
    db = database(app)

    class Interrupted(Exception):
        pass

    async def add_then_fail() -> None:
        async with db.write() as writer:
            await add_user(writer, "first")
            raise Interrupted

    with pytest.raises(Interrupted):
        await add_then_fail()
    assert await user_count(db) == 0


async def drop_every_other_connection(database_url: str) -> int:
    """Have PostgreSQL end every connection to this database but ours, as a restart would."""
    admin = await asyncpg.connect(database_url)
    try:
        ended: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return ended


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_requests_succeed_after_the_database_drops_every_connection(
    client: Client, alice: Account, database_url: str
) -> None:
    created = await client.post("/items", json={"name": "Book"}, headers=alice.headers)
    path = f"/items/{(await created.get_json())['id']}"
    assert (await client.get(path, headers=alice.headers)).status_code == 200

    assert await drop_every_other_connection(database_url) > 0

    assert (await client.get(path, headers=alice.headers)).status_code == 200
    second = await client.post("/items", json={"name": "Pen"}, headers=alice.headers)
    assert second.status_code == 201


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_write_right_after_the_database_drops_every_connection_succeeds(
    client: Client, alice: Account, database_url: str
) -> None:
    """No pool pre-ping: a write checks its connection itself and replaces a closed one."""
    assert (await client.get("/items", headers=alice.headers)).status_code == 200
    assert await drop_every_other_connection(database_url) > 0

    created = await client.post("/items", json={"name": "Pen"}, headers=alice.headers)
    assert created.status_code == 201
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_readiness_right_after_the_database_drops_every_connection_is_ready(
    client: Client, alice: Account, database_url: str
) -> None:
    assert (await client.get("/readyz")).status_code == 200
    assert await drop_every_other_connection(database_url) > 0
    assert (await client.get("/readyz")).status_code == 200


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[Client]:
    """The service with a pool of one connection and a short wait for it."""
    application = create_app(
        make_settings(settings.database_url, db_pool_size=1, db_pool_timeout=1)
    )
    async with application.test_app():
        yield application.test_client()


async def test_every_kind_of_authenticated_request_works_with_a_pool_of_one(
    one_connection: Client,
) -> None:
    """A pool of one has no read lane: every read checks the one connection out and hands it
    back before a write, at the end of its block and on an error; a request that held two
    connections, or leaked one, would wait the pool timeout and get 503."""
    client = one_connection
    account = await sign_up(client, f"pool-{uuid.uuid4().hex[:8]}")
    headers = account.headers
    created = await client.post("/items", json={"name": "Book"}, headers=headers)
    assert created.status_code == 201
    path = f"/items/{(await created.get_json())['id']}"
    answers = [
        (await client.get(path, headers=headers)).status_code,
        (await client.get(f"/items/{uuid.uuid4()}", headers=headers)).status_code,
        (await client.put(path, json={"name": 5}, headers=headers)).status_code,
        (await client.patch(path, json={"name": "Pen"}, headers=headers)).status_code,
        (await client.get("/items", headers=headers)).status_code,
        (await client.get("/sessions", headers=headers)).status_code,
        (await client.get("/me", headers=headers)).status_code,
        (await client.delete(path, headers=headers)).status_code,
        (await client.get(path, headers=headers)).status_code,
    ]
    assert answers == [200, 404, 422, 200, 200, 200, 200, 204, 404]
