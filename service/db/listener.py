"""Cross-process notices on PostgreSQL: ``NOTIFY`` inside a write, ``LISTEN`` in every worker.

A writer announces a change with ``Writer.announce(channel, payload)``: ``pg_notify`` inside
its transaction, which PostgreSQL delivers to every listening session when, and only if, the
transaction commits, in commit order (the ``NOTIFY`` reference page). ``Listener`` is one
worker's listening connection: it hands each payload to ``on_notice`` and tells its
subscriber about every span in which notices may have been missed:

- ``on_listening()`` once ``LISTEN`` is in force: only from then on is every notice seen;
- ``on_gap()`` the moment the connection is lost, its heartbeat fails or the listener stops:
  from then on notices may be missed, until the next ``on_listening()``.

The heartbeat (a ``SELECT 1`` every ``heartbeat`` seconds, bounded by ``DB_STATEMENT_TIMEOUT``)
finds a connection that died without a word (a partition, a frozen server), which a listener
that only waits for notices would never notice. The connection is one more per worker,
outside the pool (``DB_POOL_SIZE``), opened with the pool's own settings; it reconnects every
``retry`` seconds while the database is away. SQLite has no such channel: there is no
``Listener``, and what would rely on one keeps asking the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import asyncpg

log = logging.getLogger("service.db")

#: Seconds between two heartbeats of a listening connection.
HEARTBEAT = 2.0
#: Seconds between two attempts to connect while the database is away.
RETRY = 1.0
#: How many recent payloads ``heard`` remembers.
RECENT = 1024


class Listener:
    """One ``LISTEN`` connection of a worker on ``channel`` (see the module doc)."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        *,
        on_notice: Callable[[str], None],
        on_listening: Callable[[], None],
        on_gap: Callable[[], None],
        timeout: float,
        heartbeat: float = HEARTBEAT,
        retry: float = RETRY,
    ) -> None:
        #: Opens a connection with the pool's settings, outside the pool.
        self._connect = connect
        self._channel = channel
        self._on_notice = on_notice
        self._on_listening = on_listening
        self._on_gap = on_gap
        self._timeout = timeout
        self._heartbeat = heartbeat
        self._retry = retry
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._listening = False
        #: payload -> when it was last heard (monotonic), and who waits to hear it
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

    @property
    def channel(self) -> str:
        return self._channel

    async def heard(self, payload: str, since: float, within: float) -> bool:
        """Wait up to ``within`` seconds until ``payload`` has been heard after ``since``
        (``time.monotonic()``); True if it was, False if not listening or not in time.

        A writer that announced ``payload`` waits for its own notice before it answers: the
        database signals every listening session at commit, so once this worker has heard
        it, every other worker's listener has been sent it too.
        """
        if not self._listening:
            return False
        if self._recent.get(payload, -1.0) >= since:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(payload, []).append(waiter)
        try:
            async with asyncio.timeout(within):
                await waiter
        except TimeoutError:
            return False
        finally:
            waiters = self._waiting.get(payload, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiting.pop(payload, None)
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("listening for %s stopped (%s); retrying", self._channel, error)
            await asyncio.sleep(self._retry)

    async def _listen_once(self) -> None:
        self._lost.clear()
        driver = await self._connect()
        try:
            driver.add_termination_listener(self._terminated)
            await driver.add_listener(self._channel, self._notified)
            self._on_listening()
            self._listening = True
            try:
                while not self._lost.is_set():
                    with suppress(TimeoutError):
                        async with asyncio.timeout(self._heartbeat):
                            await self._lost.wait()
                    if not self._lost.is_set():
                        await driver.fetchval("SELECT 1", timeout=self._timeout)
            finally:
                self._listening = False
                self._on_gap()
        finally:
            driver.terminate()  # nothing to finish on it: close the socket at once

    def hear_locally(self, payload: str) -> None:
        """``payload`` from this very process, committed: its subscriber acts at once, before
        the database's notice comes back round."""
        self._on_notice(payload)

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_notice(payload)
        self._recent[payload] = time.monotonic()
        self._recent.move_to_end(payload)
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        for waiter in self._waiting.pop(payload, []):
            if not waiter.done():
                waiter.set_result(None)

    def _terminated(self, _connection: Any) -> None:
        self._lost.set()
