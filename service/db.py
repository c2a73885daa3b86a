"""The database of one app: engine, session factory, URL normalisation, SQLite pragmas, readiness.

One data layer for both engines: SQLite through aiosqlite (the embedded default) and PostgreSQL
through asyncpg. ``DATABASE_URL`` may name either in its plain form; the async driver is chosen
here so that Heroku's ``postgres://`` URL works unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from service.settings import Settings

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


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
        raise ValueError(f"DATABASE_URL: unsupported database {backend!r} (use sqlite or postgresql)")
    url = url.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "postgresql" and "sslmode" in url.query:
        query = dict(url.query)
        query["ssl"] = query.pop("sslmode")
        url = url.set(query=query)
    return url


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for ``settings.database_url``; SQLite files get their directory created."""
    url = async_url(settings.database_url)
    if is_sqlite(url):
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # A fixed pool: every extra SQLite connection would cost a thread and its pragmas.
        engine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        connect_args={"timeout": settings.db_pool_timeout},
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings.

    The driver's own transaction handling is switched off (``isolation_level = None``) so
    that ``_sqlite_begin`` decides how each transaction starts.

    WAL lets readers run beside the writer; ``synchronous=FULL`` makes every acknowledged
    commit survive power loss (the SPEC's durability rule; NORMAL could lose the last
    commits in WAL mode); foreign keys are off by default in SQLite; ``busy_timeout``
    waits for a competing writer instead of failing at once.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=5000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """Start write transactions with ``BEGIN IMMEDIATE``.

    A deferred transaction that reads and then writes cannot wait for a competing writer in
    WAL mode: SQLite fails it at once with "database is locked". Taking the write lock up
    front makes writers queue on ``busy_timeout`` instead; readers keep plain ``BEGIN``.
    """
    immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_WRITE_OPTION = "service_write_transaction"


class Database:
    """The engine and session factory of one app, bound in ``create_app``."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self._readers = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writers = async_sessionmaker(
            self.engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; its transaction is rolled back when the block ends."""
        async with self._readers() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction: committed on success, rolled back on error."""
        async with self._writers.begin() as session:
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot answer ``SELECT 1``."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
