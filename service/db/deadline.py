"""A request's database deadline: one budget of time that all of its database waits share.

``DB_STATEMENT_TIMEOUT`` bounds each database call and ``DB_POOL_TIMEOUT`` each wait for a
connection, but a request makes several: the session check, then a write's checkout, ping,
statements and COMMIT. While the database hangs each of them waits out its own bound, so one
request could take several times ``DB_STATEMENT_TIMEOUT`` to get its 503. So each request gets
one budget of ``DB_STATEMENT_TIMEOUT`` seconds (``start``, called by the web layer as the
request starts), and every wait for the database in ``service.db`` is bounded by what is left
of it and charged to it:

- a call that takes a timeout (asyncpg's ``fetchrow``, a wait of our own) is given what is
  left (``timeout``, ``left``) and charged (``Waiting``);
- a call through SQLAlchemy, which takes no timeout, runs under ``bounded``
  (``asyncio.timeout``); the engine's error hook throws the interrupted connection away;
- SQLite's wait for another process's write lock gets what is left as its ``busy_timeout``.

A call that runs out of time fails as a statement over ``DB_STATEMENT_TIMEOUT`` does (an
``OperationalError`` from a ``TimeoutError``: 503), or, waiting for a connection, as the
pool's own timeout does. Once nothing is left, a call that has to wait fails at once.

Only waits for the database are charged. Reading the request body, a password hash in the
hashing pool or a Redis round trip between two database calls are not, so a slow upload or a
busy hashing pool never turns a healthy database into 503s; a request answers within its
budget plus its own work. Outside a request (the command line, the mail sender, the
revocation listener, migrations) there is no budget and each call keeps the bounds of the
settings alone. asyncpg's ``command_timeout`` stays the outer bound of every call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TypeVar

from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service.db.driver_errors import driver_error

T = TypeVar("T")


class Budget:
    """Seconds of waiting for the database that a request has left (may go below 0)."""

    __slots__ = ("left",)

    def __init__(self, seconds: float) -> None:
        self.left = seconds


_budget: ContextVar[Budget | None] = ContextVar("database_budget", default=None)


def start(seconds: float) -> None:
    """Give the current request ``seconds`` of database time. Each request runs in a task of
    its own, with a context of its own, so this never reaches another request."""
    _budget.set(Budget(seconds))


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Run the block on a budget of its own of ``seconds`` (a probe that must answer soon)."""
    token = _budget.set(Budget(seconds))
    try:
        yield
    finally:
        _budget.reset(token)


def left(cap: float) -> float:
    """How long one wait may take: ``cap``, or less if the request has less left (not below 0)."""
    found = _budget.get()
    return cap if found is None else max(0.0, min(cap, found.left))


def timeout() -> float | None:
    """The timeout to give a driver call: what the request has left (asyncpg refuses to start
    a call without time left: its ``TimeoutError``), or None outside a request, where the
    driver keeps its own bound (``command_timeout``)."""
    found = _budget.get()
    return None if found is None else found.left


class Waiting:
    """``with Waiting():`` charges the time the block takes to the request's budget."""

    __slots__ = ("_budget", "_started")

    def __enter__(self) -> None:
        self._budget = _budget.get()
        self._started = time.monotonic()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._budget is not None:
            self._budget.left -= time.monotonic() - self._started


async def bounded(call: Awaitable[T], *, checkout: bool = False) -> T:
    """Await ``call`` (one through SQLAlchemy, which takes no timeout) within what the request
    has left, and charge its time. Running out cancels it and raises what a statement over
    asyncpg's ``command_timeout`` raises through the data layer (an ``OperationalError`` from
    a ``TimeoutError``; a ``checkout``: the pool's ``TimeoutError``); the engine's error hook
    throws the cancelled statement's connection away."""
    found = _budget.get()
    if found is None:
        return await call
    started = time.monotonic()
    timer = asyncio.timeout(found.left)
    try:
        async with timer:
            return await call
    except TimeoutError as error:
        if not timer.expired():
            raise
        if checkout:  # as the pool's own timeout is raised
            raise PoolTimeoutError("no database connection within the request's time") from None
        sql = "(out of the request's database time)"
        raise driver_error(sql, TimeoutError(), invalidated=True) from error
    finally:
        found.left -= time.monotonic() - started
