"""The database of one app: its engine and its units of work (``Database``).

One data layer for both engines: SQLAlchemy Core statements over the tables of ``models``,
run on SQLite (the embedded default, ``service.db.sqlite``) or PostgreSQL (asyncpg,
``service.db.postgres``). ``DATABASE_URL`` may name either in its plain form; the driver is
chosen here so that Heroku's ``postgres://`` URL works unchanged.

Data functions take a ``Reader`` (``db.read()``) or a ``Writer`` (``db.write()``, one
transaction) and never see which engine is behind it (``service.db.units``). The plain path
is the one described here: every ``read()`` block and every write checks a connection out of
SQLAlchemy's pool. The optional fast path (``service.db.fast``, on unless
``DATABASE_FAST_PATH=false``) answers ``read()`` blocks more cheaply and listens for
revocations; writes always take the plain path.

**Bounded time.** No database call waits without limit, and in a request all of them
together wait at most ``DB_STATEMENT_TIMEOUT``: each wait gets what the request has left of
it (``service.db.deadline``: checkouts, statements, BEGIN and COMMIT, a write's ping, SQLite's
write lock). ``DB_POOL_TIMEOUT`` bounds the wait for a pooled connection; the drivers' own
bounds are in ``service.db.postgres`` and ``service.db.sqlite``.

**Interrupted connections** (a timeout, a reset socket, a cancelled request) are thrown
away, and every driver failure is raised as SQLAlchemy would raise it, whichever path ran the
statement (``service.db.driver_errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from service.config import Settings
from service.db import deadline, fast
from service.db.driver_errors import ASYNCPG_ERRORS, connection_lost, driver_error
from service.db.fast.listener import Listener
from service.db.library_internals import invalidate_pool
from service.db.postgres import create_postgres_engine
from service.db.sqlite import WRITE_OPTION, create_sqlite_engine
from service.db.units import Notices, Reader, RetryingReader, Writer, within

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(database_url: str) -> URL:
    """Turn any accepted ``DATABASE_URL`` form into the URL of its async driver.

    ``postgres://`` (Heroku) and ``postgresql://`` become ``postgresql+asyncpg://``;
    ``sqlite:///`` becomes ``sqlite+aiosqlite:///``; explicit async forms pass through.
    libpq's ``sslmode`` query parameter is renamed to asyncpg's ``ssl``.
    """
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url.removeprefix("postgres://")
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r} (use sqlite or postgresql)")
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("SQLite needs a file (sqlite:///path/to/file.db), not :memory:")
    url = url.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "postgresql" and "sslmode" in url.query:
        query = dict(url.query)
        query["ssl"] = query.pop("sslmode")
        url = url.set(query=query)
    return url


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


async def _throw_away(connection: AsyncConnection, error: BaseException) -> None:
    """Invalidate ``connection`` (never handed out again) and give its slot back to the pool."""
    await connection.invalidate(error)
    await connection.close()


class Database:
    """The engine of one app, bound in ``create_app``.

    ``engine`` is the pool of every write and of the plain path's reads. On PostgreSQL its
    connections are in autocommit mode: run writes through ``write()``, which opens a
    ``READ COMMITTED`` transaction (PostgreSQL's default level, named so it cannot drift).
    ``fast`` is the fast path (``service.db.fast``), or None when it is off.
    """

    def __init__(self, settings: Settings) -> None:
        url = async_url(settings.database_url)
        self._postgres = not is_sqlite(url)
        self.engine = (
            create_postgres_engine(settings, url)
            if self._postgres
            else create_sqlite_engine(settings, url)
        )
        self._writes = self.engine.execution_options(**{WRITE_OPTION: True})
        if self._postgres:
            self._writes = self._writes.execution_options(isolation_level="READ COMMITTED")
        self.notices = Notices()
        self.fast = fast.build(settings, self.engine, url)

    def listener(
        self,
        channel: str,
        *,
        on_notice: Callable[[str], None],
        on_listening: Callable[[], None],
        on_proof: Callable[[], None],
        on_gap: Callable[[], None],
    ) -> Listener | None:
        """A ``Listener`` on ``channel`` for ``Writer.announce``; None on SQLite or without
        the fast path."""
        if self.fast is None:
            return None
        return self.fast.listener(
            channel,
            on_notice=on_notice,
            on_listening=on_listening,
            on_proof=on_proof,
            on_gap=on_gap,
        )

    def read(self) -> AbstractAsyncContextManager[Reader]:
        """A reader for queries outside any transaction (each statement sees committed data):
        the fast path's, or one on a connection of the pool's."""
        return self._plain_read() if self.fast is None else self.fast.read()

    @asynccontextmanager
    async def _plain_read(self) -> AsyncIterator[Reader]:
        connection = await deadline.bounded(self.engine.connect(), checkout=True)
        try:
            # PostgreSQL's engine is in autocommit mode; SQLite's read sees one snapshot.
            yield RetryingReader(connection) if self._postgres else Reader(connection)
        finally:
            await connection.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Writer]:
        """One write transaction: committed when the block ends, rolled back on error.

        The channels the writer asked for (``Writer.notify_after_commit``) ring after COMMIT.
        """
        postgres = self._postgres
        if postgres:
            connection = await self._live_write_connection()
        else:
            connection = await deadline.bounded(self._writes.connect(), checkout=True)
        try:
            async with connection.begin() as transaction:
                writer = Writer(connection, postgres=postgres)
                try:
                    yield writer
                except BaseException:
                    await within(transaction.rollback(), postgres)
                    raise
                await within(transaction.commit(), postgres)
        finally:
            await connection.close()
        for channel in writer.notices:
            self.notices.ring(channel)
        if self.fast is not None:
            for channel, payload in writer.announced:
                await self.fast.heard_by_all(channel, payload)

    async def _live_write_connection(self) -> AsyncConnection:
        """A PostgreSQL write connection that answered a ping (the pool pings nothing).

        Unlike a read, a write is never run twice, so its connection is checked before the
        transaction starts: one that the server closed is replaced (like the pool's pre-ping
        would); a ping that times out is a 503, as the write itself would be.
        """
        connection = await deadline.bounded(self._writes.connect(), checkout=True)
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, asyncpg.Connection)
        try:
            with deadline.Waiting():  # SQLAlchemy's own ping statement
                await driver.fetchrow(";", timeout=deadline.timeout())
        except ASYNCPG_ERRORS as error:
            lost = connection_lost(error, closed=driver.is_closed())
            if lost:  # connections as old as this one are likely closed too
                invalidate_pool(self.engine.sync_engine.pool, raw)
            await _throw_away(connection, error)
            if not lost:
                raise driver_error(";", error, invalidated=True) from error
            return await deadline.bounded(self._writes.connect(), checkout=True)
        except BaseException as error:  # a cancellation or a bug: the state is unknown
            await asyncio.shield(_throw_away(connection, error))
            raise
        return connection

    async def ping(self) -> None:
        """Raise unless the database answers: a write connection's check on PostgreSQL (a
        closed connection is replaced, and a new one has answered), ``SELECT 1`` on SQLite."""
        if self._postgres:
            await (await self._live_write_connection()).close()
            return
        connection = await deadline.bounded(self.engine.connect(), checkout=True)
        try:
            await connection.execute(text("SELECT 1"))
        finally:
            await connection.close()

    async def dispose(self) -> None:
        if self.fast is not None:
            await self.fast.dispose()
        await self.engine.dispose()
