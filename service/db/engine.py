"""The database of one app: engines, read and write units of work, SQLite pragmas, readiness.

One data layer for both engines: SQLAlchemy Core statements over the tables of ``models``,
run on SQLite (the embedded default) or PostgreSQL (asyncpg). ``DATABASE_URL`` may name either
in its plain form; the driver is chosen here so that Heroku's ``postgres://`` URL works unchanged.

Data functions take a ``Reader`` (``db.read()``) or a ``Writer`` (``db.write()``, one
transaction) and never see which engine is behind it:

- **Writes** always go through SQLAlchemy's asyncio engine: aiosqlite runs SQLite in a worker
  thread because a writer may have to wait for another process's write lock; asyncpg is async.
- **Reads on PostgreSQL** use the same pool, whose connections are in autocommit mode: no
  BEGIN/ROLLBACK round trips for a single SELECT. Writes open a ``READ COMMITTED``
  transaction.
- **No pre-ping on PostgreSQL.** A pre-ping costs a round trip per checkout to find what the
  first statement finds anyway. A read that meets a connection the server closed (a restart,
  a failover) is run once more on a fresh connection (``PostgresReader``); a write, which is
  never run twice, pings its connection before its transaction starts and replaces a closed
  one (``Database.write``).
- **The read lane.** Planned SELECTs (below) borrow one of a few long-lived connections for
  their one statement instead of checking one out (``service.db.fast.read_lane``): the session
  check and the item read of ``GET /items/{id}`` are two round trips and no checkout.
- **Reads on SQLite** run inline on the event loop through a synchronous, ``query_only``
  connection: in WAL mode a reader never waits for a writer, and a point read is far cheaper
  than handing each DBAPI call of a query to aiosqlite's thread. A read can only stall in
  SQLite's rare WAL recovery; ``busy_timeout`` bounds that wait and the request gets 503.
- **Statements built once** (module constants with ``bindparam``) and run with a parameter
  dict are SELECTs asked on nearly every request; the readers run them on a prepared plan
  (``service.db.fast.prepared``) with the driver itself. Callers cannot tell: same rows, same
  errors.

**Bounded time.** No database call waits without limit, and in a request all of them
together wait at most ``DB_STATEMENT_TIMEOUT``: each wait below gets what the request has
left of it (``service.db.deadline``: checkouts, statements, BEGIN and COMMIT, a write's
ping, a lane connection, SQLite's write lock):

- asyncpg's ``command_timeout`` (``DB_STATEMENT_TIMEOUT``) bounds every operation on a
  connection on the client side, in a request or not. It is the one that holds when the
  server is frozen (SIGSTOP, a stalled disk, a partition); PostgreSQL's ``statement_timeout``,
  set to the same value, makes a live server stop the work itself (lock waits included). The
  TCP level cannot help: a frozen server's kernel still acknowledges packets and keep-alives.
- asyncpg's connect ``timeout`` (``DB_CONNECT_TIMEOUT``) bounds opening a connection, and
  ``DB_POOL_TIMEOUT`` the wait for a pooled one.
- SQLite's ``busy_timeout`` bounds a writer's wait for another process's write lock.

**Interrupted connections** (a timeout, a reset socket, a cancelled request) are thrown
away, and every driver failure is raised as SQLAlchemy would raise it, whichever path ran the
statement (``service.db.driver_errors``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import (
    CursorResult,
    Engine,
    Executable,
    Result,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection

from service.db import deadline
from service.db.driver_errors import (
    ASYNCPG_ERRORS,
    close_at_once,
    connection_lost,
    discard_interrupted,
    driver_error,
    interrupts,
)
from service.db.fast.listener import Listener
from service.db.fast.prepared import Plan, Plans
from service.db.fast.read_lane import ReadLane
from service.settings import Settings

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
#: Bound values of a statement built with ``bindparam`` (hot queries are built once).
Params = Mapping[str, Any] | None
#: Execution option that makes ``_sqlite_begin`` take the write lock up front.
_WRITE_OPTION = "service_write_transaction"
#: Key of a SQLite write connection's ``busy_timeout`` (ms) in its pool record's ``info``.
_BUSY_MS = "service_busy_ms"
#: How long an inline SQLite read may wait (it blocks the event loop meanwhile).
SQLITE_READ_WAIT_MS = 100
#: Seconds after which a PostgreSQL connection is replaced (the pool's, and the read lane's).
POOL_RECYCLE = 1800
#: The longest a write that announced a change waits for its own listener to hear it.
ANNOUNCE_WAIT = 1.0
#: The most connections the read lane takes (``read_lane_size``).
MAX_READ_LANE = 4


def read_lane_size(pool_size: int) -> int:
    """How many of a worker's ``pool_size`` connections form the read lane: half, at most
    ``MAX_READ_LANE``, and none below a pool of 4, so that writes and other reads keep enough
    (``service.db.fast.read_lane``)."""
    return 0 if pool_size < 4 else min(MAX_READ_LANE, pool_size // 2)


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


#: A row as its columns by key.
RowMap = Mapping[Any, Any]
R = TypeVar("R")


def record(kind: type[R], row: RowMap | None) -> R | None:
    """``row`` as a ``kind`` (a dataclass with the row's columns as fields), or None."""
    return None if row is None else kind(**row)


def records(kind: type[R], rows: Sequence[RowMap]) -> list[R]:
    """Each of ``rows`` as a ``kind``."""
    return [kind(**row) for row in rows]


class Reader:
    """Runs read statements; each row comes back as a mapping of its columns by key.

    The base class runs them through SQLAlchemy on an ``AsyncConnection``, on PostgreSQL
    within the request's database time (``bounded``, ``service.db.deadline``). The readers
    below run a SELECT on its prepared plan (``service.db.fast.prepared``) when it has one.
    """

    def __init__(self, connection: AsyncConnection, *, bounded: bool = False) -> None:
        self._connection = connection
        self._bounded = bounded

    async def _result(self, statement: Executable, params: Params) -> Result[Any]:
        return await _within(self._connection.execute(statement, params), self._bounded)

    async def first(self, statement: Executable, params: Params = None) -> RowMap | None:
        """The first row, or None."""
        return (await self._result(statement, params)).mappings().first()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[RowMap]:
        return (await self._result(statement, params)).mappings().all()

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        """The first column of the first row, or None."""
        return (await self._result(statement, params)).scalar()


class PostgresReader(Reader):
    """Reads on an autocommit PostgreSQL connection; planned SELECTs go to asyncpg's ``fetchrow``.

    A driver error of a planned read is raised as SQLAlchemy raises it (``driver_error``), so
    every caller and error handler sees one kind of error whichever path ran the query.

    Connections are handed out without a pre-ping. A read that finds its connection closed by
    the server (a restart, a failover, an administrator ending it: ``connection_lost``) marks
    every pooled connection of the same age for replacement and runs once more on a fresh
    connection: a SELECT may run twice without harm. A timeout is never retried (the server
    may be frozen, and a second wait would break the bound of the module doc).
    """

    def __init__(self, connection: AsyncConnection, plans: Plans) -> None:
        super().__init__(connection, bounded=True)
        self._plans = plans
        #: The pool's connection and its asyncpg connection, while ``connection`` holds them
        #: (asking the ``AsyncConnection`` each time costs a greenlet switch).
        self._raw: PoolProxiedConnection | None = None
        self._driver: asyncpg.Connection | None = None

    async def close(self) -> None:
        """Hand the connection back to the pool."""
        self._raw = self._driver = None
        await self._connection.close()

    def outdated(self, recycle: float) -> bool:
        """Whether the connection was opened more than ``recycle`` seconds ago or before the
        pool's last invalidation: the test a pool checkout applies (``read_lane``)."""
        raw = self._raw
        record = getattr(raw, "_connection_record", None)
        if record is None:
            return False
        opened: float = record.starttime
        invalidated: float = getattr(self._connection.sync_engine.pool, "_invalidate_time", 0)
        return time.time() - opened > recycle or opened < invalidated

    async def first(self, statement: Executable, params: Params = None) -> RowMap | None:
        plan = self._plans.plan(statement, params)
        if plan is None:
            return await self._retrying(super().first, statement, params)
        assert params is not None
        return await self.run_plan(plan, params)

    async def run_plan(self, plan: Plan, params: Mapping[str, Any]) -> RowMap | None:
        """The first row of a planned read, once more on a fresh connection if this one was
        lost (see the class doc)."""
        try:
            return await self._planned_first(plan, params)
        except _LostConnection:
            pass
        try:  # on a fresh connection
            return await self._planned_first(plan, params)
        except _LostConnection as lost:
            raise lost.error from lost.error.orig

    async def all(self, statement: Executable, params: Params = None) -> Sequence[RowMap]:
        return await self._retrying(super().all, statement, params)

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        return await self._retrying(super().scalar, statement, params)

    async def _retrying(
        self,
        read: Callable[[Executable, Params], Awaitable[R]],
        statement: Executable,
        params: Params,
    ) -> R:
        """``read`` through SQLAlchemy, once more on a fresh connection if this one was lost.

        Only the error tells (SQLAlchemy has closed the driver's connection by the time it
        raises), so asyncpg's protocol-state error in the instant after the server closed the
        connection is a 503 here; the session check, the first read of most requests, is a
        planned read and tells that case apart too.
        """
        try:
            return await read(statement, params)
        except DBAPIError as error:
            if not connection_lost(error):
                raise
        # SQLAlchemy has invalidated the connection (and marked the pool, for a disconnect);
        # the rollback ends the failed statement's autocommit transaction, so the next
        # statement checks out a fresh connection.
        await self._connection.rollback()
        return await read(statement, params)

    async def _driver_connection(self) -> tuple[PoolProxiedConnection, asyncpg.Connection]:
        raw, driver = self._raw, self._driver
        if raw is None or driver is None or self._connection.invalidated or not raw.is_valid:
            # A connection invalidated after an error reconnects here.
            reconnect = self._connection.get_raw_connection()
            raw = self._raw = await deadline.bounded(reconnect, checkout=True)
            found = raw.driver_connection
            assert isinstance(found, asyncpg.Connection)
            driver = self._driver = found
        return raw, driver

    async def _planned_first(self, plan: Plan, params: Mapping[str, Any]) -> RowMap | None:
        """The planned read; ``_LostConnection`` if the server had closed the connection."""
        raw, driver = await self._driver_connection()
        try:
            with deadline.Waiting():
                row = await driver.fetchrow(
                    plan.sql, *plan.arguments(params), timeout=deadline.timeout()
                )
        except asyncio.CancelledError as error:  # interrupted mid-exchange: state unknown
            await asyncio.shield(self._connection.invalidate(error))
            raise
        except ASYNCPG_ERRORS as error:
            lost = connection_lost(error, closed=driver.is_closed())
            if lost:  # as SQLAlchemy does on a disconnect: connections made before now
                # are replaced when next checked out (they are likely closed too)
                self._connection.sync_engine.pool._invalidate(raw, _checkin=False)
            broken = lost or interrupts(error)
            if broken:  # the connection's state is unknown: never hand it out again
                await self._connection.invalidate(error)
            wrapped = driver_error(plan.sql, error, invalidated=broken)
            if lost:
                raise _LostConnection(wrapped) from error
            raise wrapped from error
        return None if row is None else plan.row(row)


class PostgresReads(Reader):
    """The reader of one ``Database.read()`` block on PostgreSQL.

    A planned SELECT borrows the read lane for its one statement; any other statement checks
    out a connection for the block (``connect``), which then runs every later one, planned
    or not, so the block never holds two. Without a lane everything runs on that checkout.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[PostgresReader]],
        plans: Plans | None,
        lane: ReadLane | None,
    ) -> None:
        self._connect = connect
        self._plans = plans
        self._lane = lane
        self._own: PostgresReader | None = None

    async def _reader(self) -> PostgresReader:
        if self._own is None:
            self._own = await self._connect()
        return self._own

    async def first(self, statement: Executable, params: Params = None) -> RowMap | None:
        if self._own is None and self._lane is not None and params is not None:
            assert self._plans is not None
            plan = self._plans.plan(statement, params)
            if plan is not None:
                return await self._lane.run_plan(plan, params)
        return await (await self._reader()).first(statement, params)

    async def all(self, statement: Executable, params: Params = None) -> Sequence[RowMap]:
        return await (await self._reader()).all(statement, params)

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        return await (await self._reader()).scalar(statement, params)

    async def close(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            await own.close()


class _LostConnection(Exception):
    """A planned read found its connection closed by the server; ``error`` is what to raise."""

    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


class Writer(Reader):
    """Runs statements inside one write transaction (reads see its own changes); on
    ``postgres`` it announces with ``pg_notify`` and its statements are ``bounded``."""

    def __init__(self, connection: AsyncConnection, *, postgres: bool = False) -> None:
        super().__init__(connection, bounded=postgres)
        #: Channels to ring once this transaction has committed (``notify_after_commit``).
        self.notices: set[str] = set()
        self._announces = postgres
        #: What ``announce`` sent, for ``Database.write``.
        self.announced: list[tuple[str, str]] = []

    async def announce(self, channel: str, payload: str) -> None:
        """Tell every process listening on ``channel`` (``Database.listener``) ``payload``
        when, and only if, this transaction commits: ``pg_notify`` on PostgreSQL; nothing on
        SQLite, where nobody listens."""
        if self._announces:
            self.announced.append((channel, payload))
            await self._result(select(func.pg_notify(channel, payload)), None)

    async def run(self, statement: Executable, params: Params = None) -> int:
        """Execute an INSERT, UPDATE or DELETE; the number of rows it touched."""
        result = await self._result(statement, params)
        assert isinstance(result, CursorResult)
        return result.rowcount

    def notify_after_commit(self, channel: str) -> None:
        """Wake this process's waiters on ``channel`` if, and only once, the transaction
        commits; a rolled-back transaction wakes nobody (``Notices``)."""
        self.notices.add(channel)


class Notices:
    """In-process wake-ups rung after a write transaction commits (``Database.notices``).

    A background task (the mail sender) waits on a channel instead of polling the database
    often; a writer that gave it work calls ``Writer.notify_after_commit``. Only waiters of
    this process and this ``Database`` are woken, so waiters must still poll, less often,
    for work committed elsewhere.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def ring(self, channel: str) -> None:
        event = self._events.get(channel)
        if event is not None:
            event.set()

    async def wait(self, channel: str, within: float) -> bool:
        """Wait until ``channel`` rings or ``within`` seconds pass; True if it rang.

        A ring that came while nobody waited is kept for the next wait, so work committed
        between two waits is never slept through.
        """
        event = self._events.setdefault(channel, asyncio.Event())
        try:
            async with asyncio.timeout(within):
                await event.wait()
        except TimeoutError:
            return False
        event.clear()
        return True


class InlineSQLiteReader(Reader):
    """Runs SQLite reads synchronously on the event loop (see the module docstring).

    Every statement runs to completion without yielding to the loop, so one connection serves
    all requests of the process; it is kept open (a pool checkout per read would cost more
    than the read) and replaced after any error. Planned SELECTs run on sqlite3's own cursor.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._plans = Plans(engine.dialect)
        self._held: Connection | None = None

    def _execute(self, statement: Executable, params: Params) -> Result[Any]:
        connection = self._open_connection()
        try:
            return connection.execute(statement, params)
        except Exception:
            self.close()
            raise

    async def first(self, statement: Executable, params: Params = None) -> RowMap | None:
        plan = self._plans.plan(statement, params)
        if plan is None:
            return self._execute(statement, params).mappings().first()
        assert params is not None
        driver = self._open_connection().connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            row = driver.execute(plan.sql, plan.arguments(params)).fetchone()
        except sqlite3.Error as error:
            self.close()
            # sqlite3.Error is a PEP 249 error; the stub types it as a protocol it does not name.
            gone = self._engine.dialect.is_disconnect(error, None, None)  # type: ignore[arg-type]
            raise driver_error(plan.sql, error, invalidated=gone) from error
        return None if row is None else plan.row(row)

    async def all(self, statement: Executable, params: Params = None) -> Sequence[RowMap]:
        return self._execute(statement, params).mappings().all()

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        return self._execute(statement, params).scalar()

    def _open_connection(self) -> Connection:
        connection = self._held
        if connection is None or connection.closed or connection.invalidated:
            connection = self._held = self._engine.connect()
        return connection

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def dispose(self) -> None:
        """Close the connection and the engine's pool (the app stops serving)."""
        self.close()
        self._engine.dispose()


def _sqlite_file(url: URL) -> str:
    assert url.database is not None
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return url.database


def _create_write_engine(settings: Settings, url: URL) -> AsyncEngine:
    if is_sqlite(url):
        _sqlite_file(url)
        # A fixed pool: every extra SQLite connection would cost a thread and its pragmas.
        engine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout,
            hide_parameters=True,
        )
        busy_ms = round(settings.db_statement_timeout * 1000)
        event.listen(
            engine.sync_engine,
            "connect",
            lambda connection, record: _sqlite_connect(connection, record, busy_ms=busy_ms),
        )
        event.listen(engine.sync_engine, "begin", partial(_sqlite_begin, busy_ms=busy_ms))
        return engine
    # Autocommit unless a write asks for a transaction (``Database.write``): reads need none,
    # and a write's ping is then one round trip. No ``pool_pre_ping``: see the module doc.
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=POOL_RECYCLE,
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
        connect_args=_postgres_connect_args(settings),
    )
    event.listen(engine.sync_engine, "handle_error", discard_interrupted)
    event.listen(engine.sync_engine, "invalidate", close_at_once)
    return engine


def _postgres_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's ``connect`` arguments for the bounds of the module doc."""
    statement_ms = round(settings.db_statement_timeout * 1000)
    return {
        "timeout": settings.db_connect_timeout,
        "command_timeout": settings.db_statement_timeout,
        "server_settings": {"statement_timeout": str(statement_ms)},
    }


def _create_inline_read_engine(settings: Settings, url: URL) -> Engine:
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=_sqlite_file(url)),
        isolation_level="AUTOCOMMIT",
        pool_size=1,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        hide_parameters=True,
    )
    event.listen(engine, "connect", _sqlite_read_connect)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    """Per-connection settings of the SQLite write connections.

    The driver's own transaction handling is switched off (``isolation_level = None``) so
    that ``_sqlite_begin`` decides how each transaction starts.

    WAL lets readers run beside the writer; ``synchronous=FULL`` makes every acknowledged
    commit survive power loss (an acknowledged write is never lost; NORMAL could lose the last
    commits in WAL mode); foreign keys are off by default in SQLite; ``busy_timeout``
    (``DB_STATEMENT_TIMEOUT``) waits for a competing writer instead of failing at once.
    """
    dbapi_connection.isolation_level = None
    _pragmas(
        dbapi_connection,
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        f"busy_timeout={busy_ms}",
    )


def _sqlite_read_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection settings of the inline SQLite reader: read-only, short waits.

    ``query_only`` guarantees the inline connection never writes, so it never queues for the
    write lock while holding up the event loop.
    """
    _pragmas(dbapi_connection, "query_only=ON", f"busy_timeout={SQLITE_READ_WAIT_MS}")


def _pragmas(dbapi_connection: Any, *pragmas: str) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in pragmas:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection, *, busy_ms: int) -> None:
    """Start write transactions with ``BEGIN IMMEDIATE``.

    A deferred transaction that reads and then writes cannot wait for a competing writer in
    WAL mode: SQLite fails it at once with "database is locked". Taking the write lock up
    front makes writers queue on ``busy_timeout`` instead: ``busy_ms``, or what the request
    has left of its database time (``service.db.deadline``), set on the connection for this
    wait and set back by the next write that has more.
    """
    if not connection.get_execution_options().get(_WRITE_OPTION, False):
        connection.exec_driver_sql("BEGIN")
        return
    wait_ms = round(deadline.left(busy_ms / 1000) * 1000)
    info = connection.connection.info
    if info.get(_BUSY_MS, busy_ms) != wait_ms:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
        info[_BUSY_MS] = wait_ms
    with deadline.Waiting():
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _within(call: Awaitable[R], bounded: bool) -> Awaitable[R]:
    """``call``, within the request's database time if ``bounded`` (``service.db.deadline``)."""
    return deadline.bounded(call) if bounded else call


async def _throw_away(connection: AsyncConnection, error: BaseException) -> None:
    """Invalidate ``connection`` (never handed out again) and give its slot back to the pool."""
    await connection.invalidate(error)
    await connection.close()


class Database:
    """The engines of one app, bound in ``create_app``.

    ``engine`` is the pool of both engines' writes and of PostgreSQL's reads. On PostgreSQL its
    connections are in autocommit mode: run writes through ``write()``, which opens a
    ``READ COMMITTED`` transaction (PostgreSQL's default level, named so it cannot drift).

    **Planned reads borrow the read lane.** On PostgreSQL, ``read_lane_size(DB_POOL_SIZE)`` of
    the pool's connections stay checked out as the read lane (``service.db.fast.read_lane``); a
    ``read()`` block runs each planned SELECT on a lane connection for that one statement and
    checks a connection of its own out only for another statement, which then serves the
    rest of the block. ``DB_POOL_SIZE`` stays the number of connections a worker opens.
    """

    def __init__(self, settings: Settings) -> None:
        url = async_url(settings.database_url)
        self._settings = settings
        self.engine = _create_write_engine(settings, url)
        self._writes = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._inline: InlineSQLiteReader | None = None
        self._plans: Plans | None = None
        self._lane: ReadLane | None = None
        self._listeners: dict[str, Listener] = {}
        self.notices = Notices()
        if is_sqlite(url):
            self._inline = InlineSQLiteReader(_create_inline_read_engine(settings, url))
        else:
            self._plans = Plans(self.engine.dialect)
            self._writes = self._writes.execution_options(isolation_level="READ COMMITTED")
            lane_size = read_lane_size(settings.db_pool_size)
            if lane_size:
                self._lane = ReadLane(
                    self._connect_reader,
                    size=lane_size,
                    wait=settings.db_pool_timeout,
                    recycle=POOL_RECYCLE,
                )

    def listener(
        self,
        channel: str,
        *,
        on_notice: Callable[[str], None],
        on_listening: Callable[[], None],
        on_proof: Callable[[], None],
        on_gap: Callable[[], None],
    ) -> Listener | None:
        """A ``Listener`` on ``channel`` for ``Writer.announce``; None on SQLite."""
        if self._inline is not None:
            return None
        listener = self._listeners[channel] = Listener(
            self._connect_driver,
            channel,
            on_notice=on_notice,
            on_listening=on_listening,
            on_proof=on_proof,
            on_gap=on_gap,
        )
        return listener

    async def _connect_driver(self) -> asyncpg.Connection:
        """An asyncpg connection outside the pool, made as the pool makes its own."""
        _, arguments = self.engine.dialect.create_connect_args(self.engine.url)
        return await asyncpg.connect(**arguments, **_postgres_connect_args(self._settings))

    async def _connect_reader(self) -> PostgresReader:
        assert self._plans is not None
        connection = await deadline.bounded(self.engine.connect(), checkout=True)
        return PostgresReader(connection, self._plans)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Reader]:
        """A reader for queries outside any transaction (each statement sees committed data)."""
        if self._inline is not None:
            yield self._inline
            return
        # Only PostgreSQL gets here, and its engine is in autocommit mode already.
        reads = PostgresReads(self._connect_reader, self._plans, self._lane)
        try:
            yield reads
        finally:
            await reads.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Writer]:
        """One write transaction: committed when the block ends, rolled back on error.

        The channels the writer asked for (``Writer.notify_after_commit``) ring after COMMIT.
        """
        postgres = self._inline is None
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
                    await _within(transaction.rollback(), postgres)
                    raise
                await _within(transaction.commit(), postgres)
        finally:
            await connection.close()
        for channel in writer.notices:
            self.notices.ring(channel)
        for channel, payload in writer.announced:
            await self._heard_by_all(channel, payload)

    async def _heard_by_all(self, channel: str, payload: str) -> None:
        """After an announcing commit: this worker's own subscriber hears ``payload`` at once,
        and the write waits (``ANNOUNCE_WAIT`` at most, and no longer than the request has
        left) until this worker's listener has heard it too, so every other listener has been
        sent it before the writer answers."""
        listener = self._listeners.get(channel)
        if listener is None:
            return
        listener.hear_locally(payload)
        within = deadline.left(ANNOUNCE_WAIT)
        if within > 0:
            with deadline.Waiting():
                await listener.heard(payload, within)

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
                self.engine.sync_engine.pool._invalidate(raw, _checkin=False)
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
        if self._inline is None:
            await (await self._live_write_connection()).close()
            return
        connection = await deadline.bounded(self.engine.connect(), checkout=True)
        try:
            await connection.execute(text("SELECT 1"))
        finally:
            await connection.close()

    async def dispose(self) -> None:
        if self._lane is not None:
            await self._lane.close()
        await self.engine.dispose()
        if self._inline is not None:
            self._inline.dispose()
