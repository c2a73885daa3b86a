"""The read lane: a few PostgreSQL connections that planned reads borrow one statement at a time.

A planned read (``service.db.fast.prepared``), such as the session check of every authenticated
request, is one round trip on an autocommit connection. Checking a connection out of
SQLAlchemy's pool for it and back in costs the worker more CPU than the statement itself (two
greenlet switches and the pool's bookkeeping, ~70 us against ~40 us for asyncpg's
``fetchrow`` on a busy worker). The lane keeps a few of the pool's connections checked out
for the worker's life and lends one to each planned read for that one statement.

The rules that keep it safe:

- **A slot is held for one statement and nothing else.** Its holder never waits for anything
  but the database, so a request that waits for a slot (whatever connection it holds) can
  never be waited for by a slot holder: no deadlock.
- **Waiting is bounded** by ``DB_POOL_TIMEOUT``, as a pool checkout is, or by what the request
  has left of its database time (``service.db.deadline``), and ends in the pool's own
  ``TimeoutError`` (503).
- **Failures are the reader's.** A slot reads through a ``PostgresReader`` on an engine
  connection, so a lost connection is retried once on a fresh one and an interrupted or
  cancelled statement invalidates it, exactly as on a request's own checkout. After any
  error the slot lets its connection go (closed in the background: an invalidation may
  still be under way) and opens a fresh one for its next statement.
- **Connections age out.** A slot replaces its connection once it is older than
  ``recycle`` seconds (the pool's own ``pool_recycle``) or than the pool's last invalidation
  (a restart or failover found on another connection), as a pool checkout would.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service.db import deadline
from service.db.fast.prepared import Plan


class SlotReader(Protocol):
    """What a slot reads with: a ``PostgresReader`` on one engine connection."""

    async def run_plan(self, plan: Plan, params: Mapping[str, Any]) -> Mapping[Any, Any] | None: ...

    async def close(self) -> None: ...

    def outdated(self, recycle: float) -> bool:
        """Whether its connection is older than ``recycle`` seconds or the pool's last
        invalidation."""
        ...


class _Slot:
    __slots__ = ("generation", "reader")

    def __init__(self) -> None:
        self.reader: SlotReader | None = None
        #: The lane's ``generation`` when ``reader`` was opened.
        self.generation = 0


class ReadLane:
    """``size`` slots, each a connection opened by ``connect`` on first use."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[SlotReader]],
        *,
        size: int,
        wait: float,
        recycle: float,
    ) -> None:
        self._connect = connect
        self._free = [_Slot() for _ in range(size)]
        self._waiters: deque[asyncio.Future[_Slot]] = deque()
        self._wait = wait
        self._recycle = recycle
        #: Moves at each ``close``: a connection opened before is closed when handed back.
        self._generation = 0
        self._closing: set[asyncio.Task[None]] = set()

    async def run_plan(self, plan: Plan, params: Mapping[str, Any]) -> Mapping[Any, Any] | None:
        """The first row of a planned read, run on a borrowed slot."""
        slot = await self._acquire()
        reader = slot.reader
        try:
            if reader is not None and reader.outdated(self._recycle):
                slot.reader = None
                await reader.close()
                reader = None
            if reader is None:
                reader = slot.reader = await self._connect()
                slot.generation = self._generation
            return await reader.run_plan(plan, params)
        except BaseException:
            if reader is not None and slot.reader is reader:
                slot.reader = None
                self._close_later(reader)
            raise
        finally:
            self._release(slot)

    def _close_later(self, reader: SlotReader) -> None:
        task = asyncio.get_running_loop().create_task(reader.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _acquire(self) -> _Slot:
        if self._free:
            return self._free.pop()
        waiter: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        wait = deadline.left(self._wait)
        try:
            with deadline.Waiting():
                async with asyncio.timeout(wait):
                    return await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over just as the wait ended
            else:
                waiter.cancel()
            if isinstance(error, TimeoutError):
                raise PoolTimeoutError(f"no read connection was free within {wait:g} s") from None
            raise

    def _release(self, slot: _Slot) -> None:
        if slot.reader is not None and slot.generation != self._generation:
            self._close_later(slot.reader)  # opened before the last ``close``
            slot.reader = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        self._free.append(slot)

    async def close(self) -> None:
        """Hand every free slot's connection back; a slot in use hands its own back when its
        statement ends (the app stops serving). A later read opens fresh connections, as the
        engine does after ``dispose`` (an app may serve again)."""
        self._generation += 1
        for slot in self._free:
            reader, slot.reader = slot.reader, None
            if reader is not None:
                await reader.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
