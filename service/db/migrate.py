"""Apply the Alembic migrations from code, and check a database before serving it.

``upgrade`` serves ``service migrate`` (the Procfile's release phase), ``service serve`` and the
tests. ``check_ready`` is the web process's start-up check: the database answers and its schema
is the one this release's migrations make. Both turn a failure into ``DatabaseNotReady``, whose
message is one line naming the cause and what to change, never the driver's traceback.

The Alembic configuration is built here rather than read from an ``alembic.ini``, so the
migrations ship inside the package and find the same ``DATABASE_URL`` as the service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import pool
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from service.db.engine import async_url, is_sqlite
from service.settings import Settings

#: Seconds the start-up check waits for PostgreSQL to accept the connection.
CONNECT_TIMEOUT = 10.0


class DatabaseNotReady(Exception):
    """The database cannot be served; the message is one line, safe to print (no password)."""


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", "service.db:migrations")
    url = async_url(settings.database_url).render_as_string(hide_password=False)
    config.attributes["database_url"] = url
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision``; creates a missing SQLite file and its directory.

    ``DatabaseNotReady`` if the database cannot be reached.
    """
    try:
        command.upgrade(alembic_config(settings), revision)
    except (DBAPIError, OSError) as error:
        raise DatabaseNotReady(describe(error)) from None


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)


def check_ready(settings: Settings) -> None:
    """Raise ``DatabaseNotReady`` unless the database answers and is migrated to the head.

    Never creates anything: a missing SQLite file is reported, not made empty (the release
    phase, ``service migrate``, makes it).
    """
    url = async_url(settings.database_url)
    if is_sqlite(url) and not Path(url.database or "").is_file():
        raise DatabaseNotReady(
            f"the SQLite database {url.database} does not exist: run `service migrate` "
            "(the release phase) first, or check DATABASE_URL"
        )
    try:
        current = asyncio.run(_current_heads(url))
    except (DBAPIError, OSError) as error:
        raise DatabaseNotReady(describe(error)) from None
    expected = set(ScriptDirectory.from_config(alembic_config(settings)).get_heads())
    if current != expected:
        have = ", ".join(sorted(current)) or "none (empty database)"
        raise DatabaseNotReady(
            f"the database schema is at revision {have}, this release needs "
            f"{', '.join(sorted(expected))}: run `service migrate` (the release phase) on "
            "this DATABASE_URL"
        )


async def _current_heads(url: URL) -> set[str]:
    connect_args = {} if is_sqlite(url) else {"timeout": CONNECT_TIMEOUT}
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    try:
        async with engine.connect() as connection:
            heads: tuple[str, ...] = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_heads()
            )
    finally:
        await engine.dispose()
    return set(heads)


def describe(error: DBAPIError | OSError) -> str:
    """One line: the driver's own message (SQLAlchemy's would show the statement) and the fix."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    message = " ".join(str(cause).split()) or "no message"
    kind = type(cause).__name__
    if kind != "Error":  # the asyncpg adapter's catch-all class says nothing
        message = f"{kind}: {message}"
    return (
        f"cannot use the database ({message}); check DATABASE_URL "
        "and that the database server is up and the database exists"
    )
