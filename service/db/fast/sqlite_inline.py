"""The fast path on SQLite: reads run inline on the event loop.

Reads run synchronously through a ``query_only`` sqlite3 connection instead of aiosqlite's
worker thread: in WAL mode a reader never waits for a writer, and a point read is far cheaper
than handing each DBAPI call of a query to another thread. A read can only stall in SQLite's
rare WAL recovery; ``busy_timeout`` (``SQLITE_READ_WAIT_MS``) bounds that wait, and the
request gets 503. Planned SELECTs (``service.db.fast.prepared``) run on sqlite3's own cursor.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import Engine, Executable, Result, create_engine, event
from sqlalchemy.engine import URL, Connection

from service.config import Settings
from service.db.driver_errors import driver_error
from service.db.fast.path import FastPath
from service.db.fast.prepared import Plans
from service.db.sqlite import pragmas, sqlite_file
from service.db.units import Params, Reader, RowMap

#: How long an inline SQLite read may wait (it blocks the event loop meanwhile).
SQLITE_READ_WAIT_MS = 100


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


def create_inline_read_engine(settings: Settings, url: URL) -> Engine:
    """A one-connection synchronous engine on the SQLite file of ``url``."""
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=sqlite_file(url)),
        isolation_level="AUTOCOMMIT",
        pool_size=1,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        hide_parameters=True,
    )
    event.listen(engine, "connect", _read_connect)
    return engine


def _read_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection settings of the inline SQLite reader: read-only, short waits.

    ``query_only`` guarantees the inline connection never writes, so it never queues for the
    write lock while holding up the event loop.
    """
    pragmas(dbapi_connection, "query_only=ON", f"busy_timeout={SQLITE_READ_WAIT_MS}")


class _SameReader(AbstractAsyncContextManager[Reader]):
    """A ``read()`` block that hands out the one inline reader (made once, entered by every
    request: the reader holds no state of a block)."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    async def __aenter__(self) -> Reader:
        return self._reader

    async def __aexit__(self, *_exc_info: object) -> None:
        return None


class InlineSQLiteFastPath(FastPath):
    """One inline reader for every ``read()`` block of the process."""

    def __init__(self, settings: Settings, url: URL) -> None:
        self._reader = InlineSQLiteReader(create_inline_read_engine(settings, url))
        self._block = _SameReader(self._reader)

    def read(self) -> AbstractAsyncContextManager[Reader]:
        return self._block

    async def dispose(self) -> None:
        self._reader.dispose()
