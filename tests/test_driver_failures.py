"""Driver failures in process: bounded statements, interrupted connections, hidden parameters.

A statement over ``DB_STATEMENT_TIMEOUT`` is a prompt 503 and the pool serves the next
request; an asyncpg connection caught in "another operation is in progress" (a real one: two
operations at once on one connection) is invalidated, never handed out again, on both read
paths; a driver exception without a SQLSTATE is a 503 with one warning line and no traceback;
and no log line shows a statement's parameters. ``tests/test_database_faults.py`` does the
same against a frozen and a killed server.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from quart import Quart
from sqlalchemy import bindparam, event, select, text
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

from service import create_app
from service.config import Settings
from service.db import Reader
from service.db.driver_errors import driver_error
from service.db.fast.postgres import PostgresReader
from service.db.fast.prepared import Plans
from service.db.models import User
from service.items import queries as item_queries
from tests.helpers import Account, make_settings, sign_up

SECRET_VALUE = "parameter-that-must-never-be-logged"
_SELECT_USER = select(User.id).where(User.id == bindparam("user_id"))


@pytest.fixture
async def quick(settings: Settings) -> AsyncIterator[Quart]:
    """The service with a 0.5 s statement timeout."""
    application = create_app(make_settings(settings.database_url, db_statement_timeout=0.5))
    async with application.test_app():
        yield application


def unavailable_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "service.errors" and "database unavailable" in record.getMessage()
    ]


@pytest.mark.serial  # bounds the time to the 503
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_statement_over_the_timeout_is_a_prompt_503_and_the_pool_recovers(
    quick: Quart, alice: Account, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_page = item_queries.select_items_page

    async def slow_page(db: Reader, *args: Any) -> Any:
        await db.scalar(text("SELECT pg_sleep(10)"))
        return await real_page(db, *args)

    monkeypatch.setattr(item_queries, "select_items_page", slow_page)
    client = quick.test_client()
    started = time.monotonic()
    response = await client.get("/items", headers=alice.headers)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 3
    [warning] = unavailable_warnings(caplog)
    assert warning.levelno == logging.WARNING
    assert warning.exc_info is None

    monkeypatch.setattr(item_queries, "select_items_page", real_page)
    assert (await client.get("/items", headers=alice.headers)).status_code == 200


async def busy(connection: Any) -> asyncio.Task[Any]:
    """Start a slow query on the driver connection behind a SQLAlchemy ``AsyncConnection``."""
    driver = (await connection.get_raw_connection()).driver_connection
    task = asyncio.create_task(driver.fetchval("SELECT pg_sleep(0.3)"))
    await asyncio.sleep(0.05)  # it is on the wire now
    return task


async def read_on(reader: PostgresReader, path: str) -> object:
    """A read on the prepared path (a planned SELECT) or through SQLAlchemy."""
    if path == "prepared":
        return await reader.first(_SELECT_USER, {"user_id": uuid.uuid4()})
    return await reader.all(text("SELECT 1"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("path", ["prepared", "sqlalchemy"])
async def test_a_connection_caught_mid_operation_is_invalidated(app: Quart, path: str) -> None:
    db = app.extensions["service"].db
    async with db.engine.connect() as connection:
        reader = PostgresReader(connection, Plans(db.engine.dialect))
        other = await busy(connection)
        with pytest.raises(InterfaceError) as raised:
            await read_on(reader, path)
        assert raised.value.connection_invalidated
        assert connection.invalidated
        with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresError)):
            await other  # its connection was closed under it
    async with db.read() as fresh:
        assert await fresh.first(_SELECT_USER, {"user_id": uuid.uuid4()}) is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_driver_error_without_sqlstate_is_a_503_with_one_warning_line(
    app: Quart, alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncpg's "cannot switch to state" (an ``InternalClientError``, no SQLSTATE) was a 500."""
    engine = app.extensions["service"].db.engine.sync_engine
    raised: list[bool] = []

    def protocol_confusion(*_args: Any) -> None:
        if not raised:
            raised.append(True)
            raise asyncpg.InternalClientError(
                "cannot switch to state 13; another operation (2) is in progress"
            )

    event.listen(engine, "do_execute", protocol_confusion)
    try:
        client = app.test_client()
        created = await client.post("/items", json={"name": "Book"}, headers=alice.headers)
    finally:
        event.remove(engine, "do_execute", protocol_confusion)

    assert raised
    assert created.status_code == 503
    assert int(created.headers["Retry-After"]) > 0
    [warning] = unavailable_warnings(caplog)
    assert warning.exc_info is None
    assert "InternalClientError" in warning.getMessage()
    assert "Traceback" not in caplog.text
    assert (await client.post("/items", json={"name": "Pen"}, headers=alice.headers)).status_code


@pytest.mark.parametrize(
    ("error", "kind", "interrupted"),
    [
        (asyncpg.InternalClientError("cannot switch to state 13"), InterfaceError, True),
        (asyncpg.InterfaceError("another operation is in progress"), InterfaceError, True),
        (TimeoutError(), OperationalError, True),
        (ConnectionResetError(104, "Connection reset by peer"), OperationalError, True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), OperationalError, True),
    ],
    ids=["internal-client", "interface", "timeout", "reset", "closed"],
)
def test_every_driver_failure_is_an_outage_class(
    error: Exception, kind: type[DBAPIError], interrupted: bool
) -> None:
    wrapped = driver_error("SELECT 1", error, invalidated=interrupted)
    assert type(wrapped) is kind
    assert wrapped.connection_invalidated


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_value_the_driver_refuses_is_not_an_outage(app: Quart) -> None:
    """asyncpg checks values before sending them (raising its SQLSTATE class 22 ``DataError``);
    a refused one is our bug (500), not an outage, and the connection stays."""
    async with app.extensions["service"].db.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        with pytest.raises(asyncpg.DataError) as refused:
            await driver.fetchval("SELECT $1::int", "not a number")
        assert await driver.fetchval("SELECT 1") == 1  # the connection is fine
    wrapped = driver_error("SELECT $1::int", refused.value, invalidated=False)
    assert isinstance(wrapped, DataError)


async def test_no_log_line_shows_a_statements_parameters(
    app: Quart, alice: Account, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def failing_page(db: Reader, *args: Any) -> Any:
        await db.scalar(text("SELECT no_such_function(:value)"), {"value": SECRET_VALUE})

    monkeypatch.setattr(item_queries, "select_items_page", failing_page)
    response = await app.test_client().get("/items", headers=alice.headers)

    assert response.status_code in {500, 503}
    assert caplog.records, "the failure was logged"
    assert SECRET_VALUE not in caplog.text
    for record in caplog.records:
        if record.exc_info is not None:
            assert SECRET_VALUE not in logging.Formatter().formatException(record.exc_info)


async def test_sign_up_still_works_with_short_timeouts(settings: Settings) -> None:
    """Short but sane timeouts do not fail a healthy database."""
    application = create_app(
        make_settings(
            settings.database_url,
            db_statement_timeout=1,
            db_connect_timeout=1,
            db_pool_timeout=1,
        )
    )
    async with application.test_app() as test_app:
        await sign_up(test_app.test_client(), f"quick{uuid.uuid4().hex[:8]}")
