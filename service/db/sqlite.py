"""SQLite specifics of the plain path: the database file, the write connections' pragmas and
``BEGIN IMMEDIATE``.

aiosqlite runs SQLite in a worker thread, because a writer may have to wait for another
process's write lock. ``busy_timeout`` (``DB_STATEMENT_TIMEOUT``, or what the request has
left of its database time: ``service.db.deadline``) bounds that wait.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.config import Settings
from service.db import deadline

#: Execution option that makes ``begin`` take the write lock up front.
WRITE_OPTION = "service_write_transaction"
#: Key of a SQLite write connection's ``busy_timeout`` (ms) in its pool record's ``info``.
_BUSY_MS = "service_busy_ms"
#: aiosqlite logs every call with its parameters at DEBUG: never below INFO, so that no log
#: line shows a statement's values (as ``hide_parameters`` keeps SQLAlchemy's own quiet).
_AIOSQLITE_LOG_LEVEL = logging.INFO


def sqlite_file(url: URL) -> str:
    """The database file of ``url``, its directory created if missing."""
    assert url.database is not None
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return url.database


def create_sqlite_engine(settings: Settings, url: URL) -> AsyncEngine:
    """The pool of SQLite's writes (and of its reads on the plain path)."""
    sqlite_file(url)
    aiosqlite_log = logging.getLogger("aiosqlite")
    if aiosqlite_log.level < _AIOSQLITE_LOG_LEVEL:  # NOTSET (0) would follow the root
        aiosqlite_log.setLevel(_AIOSQLITE_LOG_LEVEL)
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
        lambda connection, record: connect(connection, record, busy_ms=busy_ms),
    )
    event.listen(engine.sync_engine, "begin", partial(begin, busy_ms=busy_ms))
    return engine


def connect(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    """Per-connection settings of the SQLite write connections.

    The driver's own transaction handling is switched off (``isolation_level = None``) so
    that ``begin`` decides how each transaction starts.

    WAL lets readers run beside the writer; ``synchronous=FULL`` makes every acknowledged
    commit survive power loss (an acknowledged write is never lost; NORMAL could lose the last
    commits in WAL mode); foreign keys are off by default in SQLite; ``busy_timeout``
    (``DB_STATEMENT_TIMEOUT``) waits for a competing writer instead of failing at once.
    """
    dbapi_connection.isolation_level = None
    pragmas(
        dbapi_connection,
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        f"busy_timeout={busy_ms}",
    )


def pragmas(dbapi_connection: Any, *settings: str) -> None:
    """Run ``PRAGMA`` with each of ``settings`` on a sqlite3 connection."""
    cursor = dbapi_connection.cursor()
    for setting in settings:
        cursor.execute(f"PRAGMA {setting}")
    cursor.close()


def begin(connection: Connection, *, busy_ms: int) -> None:
    """Start write transactions with ``BEGIN IMMEDIATE``.

    A deferred transaction that reads and then writes cannot wait for a competing writer in
    WAL mode: SQLite fails it at once with "database is locked". Taking the write lock up
    front makes writers queue on ``busy_timeout`` instead: ``busy_ms``, or what the request
    has left of its database time (``service.db.deadline``), set on the connection for this
    wait and set back by the next write that has more.
    """
    if not connection.get_execution_options().get(WRITE_OPTION, False):
        connection.exec_driver_sql("BEGIN")
        return
    wait_ms = round(deadline.left(busy_ms / 1000) * 1000)
    info = connection.connection.info
    if info.get(_BUSY_MS, busy_ms) != wait_ms:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
        info[_BUSY_MS] = wait_ms
    with deadline.Waiting():
        connection.exec_driver_sql("BEGIN IMMEDIATE")
