"""PostgreSQL specifics of the plain path: the engine and asyncpg's connection arguments.

The pool's connections are in autocommit mode: a single SELECT needs no BEGIN/ROLLBACK round
trips, and a write's ping is then one round trip; ``Database.write`` opens a
``READ COMMITTED`` transaction. There is no ``pool_pre_ping``: a pre-ping costs a round trip
per checkout to find what the first statement finds anyway. A read that meets a connection
the server closed runs once more on a fresh one (``service.db.units.RetryingReader``); a
write, which is never run twice, pings its connection before its transaction starts
(``Database.write``).

asyncpg's ``command_timeout`` (``DB_STATEMENT_TIMEOUT``) bounds every operation on a
connection on the client side, in a request or not: the bound that holds when the server is
frozen (SIGSTOP, a stalled disk, a partition); PostgreSQL's ``statement_timeout``, set to the
same value, makes a live server stop the work itself (lock waits included). The TCP level
cannot help: a frozen server's kernel still acknowledges packets and keep-alives. asyncpg's
connect ``timeout`` (``DB_CONNECT_TIMEOUT``) bounds opening a connection.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.config import Settings
from service.db.driver_errors import close_at_once, discard_interrupted

#: Seconds after which a PostgreSQL connection is replaced (the pool's, and the read lane's).
POOL_RECYCLE = 1800


def create_postgres_engine(settings: Settings, url: URL) -> AsyncEngine:
    """The pool of PostgreSQL's reads and writes (autocommit unless a write asks)."""
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=POOL_RECYCLE,
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
        connect_args=connect_arguments(settings),
    )
    event.listen(engine.sync_engine, "handle_error", discard_interrupted)
    event.listen(engine.sync_engine, "invalidate", close_at_once)
    return engine


def connect_arguments(settings: Settings) -> dict[str, Any]:
    """asyncpg's ``connect`` arguments for the bounds of the module doc."""
    statement_ms = round(settings.db_statement_timeout * 1000)
    return {
        "timeout": settings.db_connect_timeout,
        "command_timeout": settings.db_statement_timeout,
        "server_settings": {"statement_timeout": str(statement_ms)},
    }


async def connect_outside_pool(settings: Settings, engine: AsyncEngine) -> asyncpg.Connection:
    """An asyncpg connection outside the pool, made as the pool makes its own."""
    _, arguments = engine.dialect.create_connect_args(engine.url)
    return await asyncpg.connect(**arguments, **connect_arguments(settings))
