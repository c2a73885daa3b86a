"""Cross-process notices on PostgreSQL: ``NOTIFY`` inside a write, ``LISTEN`` in every worker.

A writer announces a change with ``Writer.announce(channel, payload)``: ``pg_notify`` inside
its transaction, which PostgreSQL delivers to every listening session when, and only if, the
transaction commits, in commit order (the ``NOTIFY`` reference page). ``Listener`` is one
worker's listening connection: it hands each payload to ``on_notice`` and tells its
subscriber about every span in which notices may have been missed:

- ``on_listening()`` once ``LISTEN`` is in force: only from then on is every notice seen;
- ``on_proof()`` each time a notice has been seen to arrive: a probe, ``pg_notify`` on a
  channel of this listener's own, sent every ``heartbeat`` seconds and heard back. Everything
  committed before the probe was sent has been delivered by then (notices come in commit
  order), so a subscriber may trust its memory for a short lease after each proof, and no
  longer: a listener that stalls (a frozen server or backend, a half-open connection, a
  pooler that does not pass ``LISTEN`` through) stops proving within one lease;
- ``on_gap()`` the moment the connection is lost, a probe does not come back within
  ``probe_timeout`` or the listener stops: notices may have been missed, until the next
  ``on_listening()``.

The connection is one more per worker,
outside the pool (``DB_POOL_SIZE``), opened with the pool's own settings; it reconnects every
``retry`` seconds while the database is away. SQLite has no such channel: there is no
``Listener``, and what would rely on one keeps asking the database.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import asyncpg

log = logging.getLogger("service.db")

#: Seconds between two probes of a listening connection.
HEARTBEAT = 0.25
#: Seconds a probe may take to come back before the connection counts as lost.
PROBE_TIMEOUT = 0.75
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
        on_proof: Callable[[], None],
        on_gap: Callable[[], None],
        heartbeat: float = HEARTBEAT,
        probe_timeout: float = PROBE_TIMEOUT,
        retry: float = RETRY,
    ) -> None:
        #: Opens a connection with the pool's settings, outside the pool.
        self._connect = connect
        self._channel = channel
        self._probe_channel = f"{channel}_probe_{secrets.token_hex(6)}"
        self._on_notice = on_notice
        self._on_listening = on_listening
        self._on_proof = on_proof
        self._on_gap = on_gap
        self._heartbeat = heartbeat
        self._probe_timeout = probe_timeout
        self._retry = retry
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._listening = False
        self._failing = False
        self._probe: tuple[str, asyncio.Future[None]] | None = None
        #: payload -> when it was last heard (monotonic), and who waits to hear it
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._waiting: dict[str, list[asyncio.Future[bool]]] = {}

    async def heard(self, payload: str, within: float) -> bool:
        """Wait up to ``within`` seconds until ``payload`` has been heard; True if it was,
        False at once if not listening, and False on a gap or when time runs out.

        A writer that announced ``payload`` (unique to its transaction) waits for its own
        notice before it answers: the database has then signalled every listening session,
        though each sends it on when its own backend gets to it (usually within
        milliseconds, which is the window other workers have; see ``live_sessions``).
        """
        if not self._listening:
            return False
        if payload in self._recent:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(payload, []).append(waiter)
        try:
            async with asyncio.timeout(within):
                return await waiter
        except TimeoutError:
            log.warning(
                "an announcement on %s was not heard back within %g s", self._channel, within
            )
            return False
        finally:
            waiters = self._waiting.get(payload, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiting.pop(payload, None)

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
                if not self._failing:
                    log.warning(
                        "listening on %s stopped (%s: %s); retrying every %g s",
                        self._channel,
                        type(error).__name__,
                        error,
                        self._retry,
                    )
                self._failing = True
            await asyncio.sleep(self._retry)

    async def _listen_once(self) -> None:
        self._lost.clear()
        driver = await self._connect()
        try:
            driver.add_termination_listener(self._terminated)
            await driver.add_listener(self._channel, self._notified)
            await driver.add_listener(self._probe_channel, self._probed)
            self._listening = True
            self._on_listening()
            if self._failing:
                log.warning("listening on %s again", self._channel)
                self._failing = False
            try:
                while not self._lost.is_set():
                    await self._prove(driver)
                    with suppress(TimeoutError):
                        async with asyncio.timeout(self._heartbeat):
                            await self._lost.wait()
            finally:
                self._gap()
        finally:
            driver.terminate()  # nothing to finish on it: close the socket at once

    async def _prove(self, driver: asyncpg.Connection) -> None:
        """Send a probe and wait for it to come back; ``TimeoutError`` if it does not."""
        nonce = secrets.token_hex(8)
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probe = (nonce, arrived)
        try:
            async with asyncio.timeout(self._probe_timeout):
                await driver.execute("SELECT pg_notify($1, $2)", self._probe_channel, nonce)
                await arrived
        finally:
            self._probe = None
        if not self._lost.is_set():
            self._on_proof()

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
                waiter.set_result(True)

    def _probed(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._probe is not None and self._probe[0] == payload and not self._probe[1].done():
            self._probe[1].set_result(None)

    def _terminated(self, _connection: Any) -> None:
        self._lost.set()
        self._gap()

    def _gap(self) -> None:
        """From now on notices may be missed: tell the subscriber and every waiter."""
        if not self._listening:
            return
        self._listening = False
        self._on_gap()
        for waiters in self._waiting.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(False)
