"""The units of work that domain code runs statements on: ``Reader`` and ``Writer``.

Data functions take a ``Reader`` (``Database.read()``) or a ``Writer`` (``Database.write()``,
one transaction) and never see which engine or path is behind it. Here is the plain path:
SQLAlchemy Core statements on an ``AsyncConnection``; the fast path's readers
(``service.db.fast``) answer the same methods with the same rows and the same errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Executable, Result, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db import deadline
from service.db.driver_errors import connection_lost

#: Bound values of a statement built with ``bindparam`` (hot queries are built once).
Params = Mapping[str, Any] | None
#: A row as its columns by key.
RowMap = Mapping[Any, Any]
R = TypeVar("R")


def record(kind: type[R], row: RowMap | None) -> R | None:
    """``row`` as a ``kind`` (a dataclass with the row's columns as fields), or None."""
    return None if row is None else kind(**row)


def records(kind: type[R], rows: Sequence[RowMap]) -> list[R]:
    """Each of ``rows`` as a ``kind``."""
    return [kind(**row) for row in rows]


def within(call: Awaitable[R], bounded: bool) -> Awaitable[R]:
    """``call``, within the request's database time if ``bounded`` (``service.db.deadline``)."""
    return deadline.bounded(call) if bounded else call


class Reader:
    """Runs read statements; each row comes back as a mapping of its columns by key.

    Statements run through SQLAlchemy on an ``AsyncConnection``, on PostgreSQL within the
    request's database time (``bounded``, ``service.db.deadline``).
    """

    def __init__(self, connection: AsyncConnection, *, bounded: bool = False) -> None:
        self._connection = connection
        self._bounded = bounded

    async def _result(self, statement: Executable, params: Params) -> Result[Any]:
        return await within(self._connection.execute(statement, params), self._bounded)

    async def first(self, statement: Executable, params: Params = None) -> RowMap | None:
        """The first row, or None."""
        return (await self._result(statement, params)).mappings().first()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[RowMap]:
        return (await self._result(statement, params)).mappings().all()

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        """The first column of the first row, or None."""
        return (await self._result(statement, params)).scalar()


class RetryingReader(Reader):
    """Reads on PostgreSQL's autocommit pool, once more on a fresh connection if this one was
    lost.

    The pool hands connections out without a pre-ping (``service.db.postgres``). A read that
    finds its connection closed by the server (a restart, a failover, an administrator ending
    it: ``connection_lost``) runs once more on a fresh connection: a SELECT may run twice
    without harm. A timeout is never retried (the server may be frozen, and a second wait
    would break the request's bound).

    Only the error tells (SQLAlchemy has closed the driver's connection by the time it
    raises), so asyncpg's protocol-state error in the instant after the server closed the
    connection is a 503 here; the fast path's planned reads tell that case apart too.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__(connection, bounded=True)

    async def _result(self, statement: Executable, params: Params) -> Result[Any]:
        try:
            return await super()._result(statement, params)
        except DBAPIError as error:
            if not connection_lost(error):
                raise
        # SQLAlchemy has invalidated the connection (and marked the pool, for a disconnect);
        # the rollback ends the failed statement's autocommit transaction, so the next
        # statement checks out a fresh connection.
        await self._connection.rollback()
        return await super()._result(statement, params)

    async def close(self) -> None:
        """Hand the connection back to the pool."""
        await self._connection.close()


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
