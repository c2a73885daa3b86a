"""The fast path on PostgreSQL: planned reads on asyncpg itself, and the read lane.

- **Planned reads.** A statement built once (a module constant with ``bindparam``) and run
  with a parameter dict, such as the session check of every authenticated request, runs on
  its prepared plan (``service.db.fast.prepared``) with asyncpg's ``fetchrow``. A driver
  error is raised as SQLAlchemy raises it (``driver_error``), so callers cannot tell which
  path ran the query.
- **The read lane.** A ``read()`` block runs each planned SELECT on one of a few long-lived
  connections (``service.db.fast.read_lane``) for that one statement and checks a connection
  of its own out only for another statement, which then serves the rest of the block.
  ``read_lane_size(DB_POOL_SIZE)`` of the pool's connections form the lane, so
  ``DB_POOL_SIZE`` stays the number of connections a worker opens.
- **The listener** (``service.db.fast.listener``) that keeps the live-session memory exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection

from service.config import Settings
from service.db import deadline
from service.db.driver_errors import ASYNCPG_ERRORS, connection_lost, driver_error, interrupts
from service.db.fast.listener import Listener
from service.db.fast.path import FastPath
from service.db.fast.prepared import Plan, Plans
from service.db.fast.read_lane import ReadLane
from service.db.library_internals import invalidate_pool, opened_at, pool_invalidated_at
from service.db.postgres import POOL_RECYCLE, connect_outside_pool
from service.db.units import Params, Reader, RetryingReader, RowMap

#: The longest a write that announced a change waits for its own listener to hear it.
ANNOUNCE_WAIT = 1.0
#: The most connections the read lane takes (``read_lane_size``).
MAX_READ_LANE = 4


def read_lane_size(pool_size: int) -> int:
    """How many of a worker's ``pool_size`` connections form the read lane: half, at most
    ``MAX_READ_LANE``, and none below a pool of 4, so that writes and other reads keep enough
    (``service.db.fast.read_lane``)."""
    return 0 if pool_size < 4 else min(MAX_READ_LANE, pool_size // 2)


class PostgresReader(RetryingReader):
    """Reads on an autocommit PostgreSQL connection; planned SELECTs go to asyncpg's
    ``fetchrow``, once more on a fresh connection if the server had closed this one (as
    every other read here: ``RetryingReader``)."""

    def __init__(self, connection: AsyncConnection, plans: Plans) -> None:
        super().__init__(connection)
        self._plans = plans
        #: The pool's connection and its asyncpg connection, while ``connection`` holds them
        #: (asking the ``AsyncConnection`` each time costs a greenlet switch).
        self._raw: PoolProxiedConnection | None = None
        self._driver: asyncpg.Connection | None = None

    async def close(self) -> None:
        """Hand the connection back to the pool."""
        self._raw = self._driver = None
        await super().close()

    def outdated(self, recycle: float) -> bool:
        """Whether the connection was opened more than ``recycle`` seconds ago or before the
        pool's last invalidation: the test a pool checkout applies (``read_lane``)."""
        opened = None if self._raw is None else opened_at(self._raw)
        if opened is None:
            return False
        invalidated = pool_invalidated_at(self._connection.sync_engine.pool)
        return time.time() - opened > recycle or opened < invalidated

    async def first(self, statement: Executable, params: Params = None) -> RowMap | None:
        plan = self._plans.plan(statement, params)
        if plan is None:
            return await super().first(statement, params)
        assert params is not None
        return await self.run_plan(plan, params)

    async def run_plan(self, plan: Plan, params: Mapping[str, Any]) -> RowMap | None:
        """The first row of a planned read, once more on a fresh connection if this one was
        lost."""
        try:
            return await self._planned_first(plan, params)
        except _LostConnection:
            pass
        try:  # on a fresh connection
            return await self._planned_first(plan, params)
        except _LostConnection as lost:
            raise lost.error from lost.error.orig

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
                invalidate_pool(self._connection.sync_engine.pool, raw)
            broken = lost or interrupts(error)
            if broken:  # the connection's state is unknown: never hand it out again
                await self._connection.invalidate(error)
            wrapped = driver_error(plan.sql, error, invalidated=broken)
            if lost:
                raise _LostConnection(wrapped) from error
            raise wrapped from error
        return None if row is None else plan.row(row)


class _LostConnection(Exception):
    """A planned read found its connection closed by the server; ``error`` is what to raise."""

    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


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


class PostgresFastPath(FastPath):
    """Planned reads, the read lane and the ``LISTEN`` listeners of one PostgreSQL database."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self._settings = settings
        self._engine = engine
        self._plans = Plans(engine.dialect)
        self._lane: ReadLane | None = None
        self._listeners: dict[str, Listener] = {}
        lane_size = read_lane_size(settings.db_pool_size)
        if lane_size:
            self._lane = ReadLane(
                self._connect_reader,
                size=lane_size,
                wait=settings.db_pool_timeout,
                recycle=POOL_RECYCLE,
            )

    async def _connect_reader(self) -> PostgresReader:
        connection = await deadline.bounded(self._engine.connect(), checkout=True)
        return PostgresReader(connection, self._plans)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Reader]:
        # The engine is in autocommit mode already: each statement sees committed data.
        reads = PostgresReads(self._connect_reader, self._plans, self._lane)
        try:
            yield reads
        finally:
            await reads.close()

    def listener(
        self,
        channel: str,
        *,
        on_notice: Callable[[str], None],
        on_listening: Callable[[], None],
        on_proof: Callable[[], None],
        on_gap: Callable[[], None],
    ) -> Listener | None:
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
        return await connect_outside_pool(self._settings, self._engine)

    async def heard_by_all(self, channel: str, payload: str) -> None:
        """This worker's own subscriber hears ``payload`` at once, and the write waits
        (``ANNOUNCE_WAIT`` at most, and no longer than the request has left) until this
        worker's listener has heard it too, so every other listener has been sent it before
        the writer answers."""
        listener = self._listeners.get(channel)
        if listener is None:
            return
        listener.hear_locally(payload)
        within = deadline.left(ANNOUNCE_WAIT)
        if within > 0:
            with deadline.Waiting():
                await listener.heard(payload, within)

    async def dispose(self) -> None:
        if self._lane is not None:
            await self._lane.close()
