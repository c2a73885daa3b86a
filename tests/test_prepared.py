"""Prepared plans (``service.db.fast.prepared``) give what SQLAlchemy gives: same rows, types,
errors.

They run on the driver itself (SQLite's cursor, asyncpg's ``fetchrow``) instead of through
SQLAlchemy's execution machinery; these tests hold that path to the SQLAlchemy path it stands
in for, on both engines.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from service import create_app
from service.config import Settings
from service.db import Database, Reader
from service.db.fast.prepared import Plan, Plans
from service.db.migrate import upgrade
from service.db.models import Item, LoginSession, User
from service.items import queries as item_queries
from service.sessions.queries import live_session_end
from tests.helpers import Account, make_settings, sign_up


def database(app: Quart) -> Database:
    db: Database = app.extensions["service"].db
    return db


async def test_an_item_reads_the_same_as_through_sqlalchemy(client: Client, alice: Account) -> None:
    created = []
    for body in ({"name": "Book", "description": "A nice book"}, {"name": "Pen"}):
        response = await client.post("/items", json=body, headers=alice.headers)
        created.append(uuid.UUID((await response.get_json())["id"]))
    owner = uuid.UUID(alice.id)

    async with database(client.app).read() as db:
        for item_id in created:
            params = {"item_id": item_id, "owner_id": owner}
            prepared = await db.first(OWNED_ITEM, params)
            plain = await db.first(select(Item).where(Item.id == item_id, Item.owner_id == owner))
            assert prepared is not None
            assert plain is not None
            assert tuple(prepared.values()) == tuple(plain.values())
            assert list(prepared) == list(plain)
            item = await item_queries.select_item(db, owner, item_id)
            assert item is not None
            assert isinstance(item.id, uuid.UUID)
            assert item.created_at.tzinfo == UTC
        assert await item_queries.select_item(db, owner, uuid.uuid4()) is None
        assert await item_queries.select_item(db, uuid.uuid4(), created[0]) is None


async def test_the_session_check_compares_times_as_sqlalchemy_does(
    client: Client, alice: Account
) -> None:
    """A session is live until its ``expires_at`` to the microsecond, and only for its user."""
    db = database(client.app)
    user = uuid.UUID(alice.id)
    async with db.read() as reader:
        (session_id,) = [row["id"] for row in await reader.all(select(LoginSession.id))]
    bob = await sign_up(client, "bob")
    now = datetime.now(UTC)

    for expires_at, live in [(now + timedelta(microseconds=1), True), (now, False)]:
        async with db.write() as writer:
            await writer.run(update(LoginSession).values(expires_at=expires_at))
        async with db.read() as reader:
            stored = await reader.first(
                select(LoginSession.id).where(
                    LoginSession.id == session_id, LoginSession.expires_at > now
                )
            )
            assert (stored is not None) is live
            assert await _is_live_at(reader, session_id, user, now) is live
    async with db.read() as reader:
        assert await live_session_end(reader, session_id, uuid.UUID(bob.id), now) is None
        assert await live_session_end(reader, uuid.uuid4(), user, now) is None


async def _is_live_at(
    reader: Reader, session_id: uuid.UUID, user: uuid.UUID, now: datetime
) -> bool:
    params = {"session_id": session_id, "user_id": user, "now": now}
    return await reader.first(SESSION_LIVE_AT, params) is not None


#: Statements built once, as the data functions build theirs.
OWNED_ITEM = select(Item).where(
    Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id")
)
SESSION_LIVE_AT = select(LoginSession.id).where(
    LoginSession.id == bindparam("session_id"),
    LoginSession.user_id == bindparam("user_id"),
    LoginSession.expires_at > bindparam("now"),
)
ITEM_ID = select(Item.id).where(Item.id == bindparam("item_id"))


def test_each_driver_gets_its_own_plan_compiled_once() -> None:
    on_sqlite = Plans(sqlite.dialect())
    on_asyncpg = Plans(postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
    plan = on_sqlite.plan(ITEM_ID, {})
    assert plan is not None
    assert plan.sql.endswith("items.id = ?")
    asyncpg_plan = on_asyncpg.plan(ITEM_ID, {})
    assert asyncpg_plan is not None
    assert asyncpg_plan.sql.endswith("items.id = $1::UUID")
    assert on_sqlite.plan(ITEM_ID, {}) is plan


def test_statements_without_parameters_or_with_in_lists_get_no_plan() -> None:
    """They run through SQLAlchemy: a statement built per call, and an ``IN`` list, whose
    number of placeholders changes with each call."""
    plans = Plans(sqlite.dialect())
    in_list = select(Item.id).where(Item.id.in_(bindparam("ids", expanding=True)))
    assert Plan.compile(in_list, sqlite.dialect()) is None
    assert plans.plan(in_list, {"ids": [uuid.uuid4()]}) is None
    assert plans.plan(ITEM_ID, None) is None
    assert plans.plan(update(Item).values(name="x"), {}) is None


def test_statements_with_values_inside_or_repeated_column_keys_get_no_plan() -> None:
    """A value written into the statement is no parameter of the plan, and a row mapping could
    not hold two columns called ``id`` apart: SQLAlchemy runs those."""
    plans = Plans(sqlite.dialect())
    inline = select(Item.id).where(Item.name == "x", Item.id == bindparam("item_id"))
    limited = select(Item.id).where(Item.id == bindparam("item_id")).limit(5)
    joined = (
        select(Item.id, User.id)
        .join(User, User.id == Item.owner_id)
        .where(Item.id == bindparam("item_id"))
    )
    for statement in (inline, limited, joined):
        assert plans.plan(statement, {"item_id": uuid.uuid4()}) is None


@pytest.fixture
def own_settings(empty_database_url: str) -> Settings:
    """A migrated database of this test's own (each engine), which it may damage."""
    settings = make_settings(empty_database_url)
    upgrade(settings)
    return settings


async def test_a_driver_error_is_sqlalchemys_error_and_reads_recover(
    own_settings: Settings,
) -> None:
    app = create_app(own_settings)
    async with app.test_app():
        client = app.test_client()
        alice = await sign_up(client, "alice")
        async with database(app).write() as writer:
            await writer.run(text("DROP TABLE items"))

        owner, missing = uuid.UUID(alice.id), uuid.uuid4()
        async with database(app).read() as reader:
            with pytest.raises(DBAPIError) as prepared:
                await item_queries.select_item(reader, owner, missing)
            with pytest.raises(DBAPIError) as plain:
                await reader.first(select(Item).where(Item.id == missing))
        assert type(prepared.value) is type(plain.value)
        assert "items" in str(prepared.value.orig)
        assert str(missing) not in str(prepared.value), "parameters must never be shown"
        # The next prepared read (the session check of /me) works.
        assert (await client.get("/me", headers=alice.headers)).status_code == 200
