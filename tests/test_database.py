"""The data layer's transactions (``service/db.py``): a write is one transaction on both engines.

PostgreSQL's connections are in autocommit mode for reads, so these tests make sure a
``write()`` block is still a real transaction there: invisible to readers until it commits,
and gone entirely when it fails.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from quart import Quart
from sqlalchemy import func, insert, select

from service.db import Database, Writer
from service.models import User


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
