"""The web process's start-up check of its database, with the drivers alone.

``check_ready`` runs in Hypercorn's master before any worker starts (``service/cli/serving.py``):
the database answers, exists and is at ``SCHEMA_HEAD``, the revision this release's migrations
end at. It reads ``alembic_version`` with ``sqlite3`` or ``asyncpg`` directly, because
importing SQLAlchemy and Alembic here would add their import time to every restart (workers
import them again on their own: Hypercorn spawns them); ``tests/test_migrations.py`` keeps
``SCHEMA_HEAD`` equal to Alembic's head. It never creates anything: a missing SQLite file is
reported, not made empty.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import asyncpg

#: The head revision of ``service/db/migrations``; a new migration file changes it.
SCHEMA_HEAD = "0008"
#: Seconds the check waits for PostgreSQL to accept the connection.
CONNECT_TIMEOUT = 10.0
_POSTGRES = re.compile(r"^postgres(?:ql)?(?:\+asyncpg)?://")
_SQLITE = re.compile(r"^sqlite(?:\+\w+)?:///")


def database_location(database_url: str) -> str:
    """Where the data lives, for the start-up line: a SQLite file as an absolute path (a
    relative ``sqlite:///`` path is relative to the working directory), else the host and
    database name of the URL, never its password."""
    if _SQLITE.match(database_url):
        return f"SQLite file {Path(_SQLITE.sub('', database_url)).resolve()}"
    rest = _POSTGRES.sub("", database_url).rpartition("@")[2]
    return f"PostgreSQL at {rest.split('?')[0]}"


class DatabaseNotReady(Exception):
    """The database cannot be served; the message is one line, safe to print (no password)."""


def check_ready(database_url: str) -> None:
    """Raise ``DatabaseNotReady`` unless the database answers and is at ``SCHEMA_HEAD``."""
    try:
        revision = (
            _sqlite_revision(database_url)
            if _SQLITE.match(database_url)
            else asyncio.run(_postgres_revision(database_url))
        )
    except (OSError, sqlite3.Error, asyncpg.PostgresError, ValueError) as error:
        raise DatabaseNotReady(describe(error)) from None
    if revision != SCHEMA_HEAD:
        raise DatabaseNotReady(
            f"the database schema is at revision {revision or 'none (empty database)'}, this "
            f"release needs {SCHEMA_HEAD}: run `service migrate` (the release phase) on this "
            "DATABASE_URL"
        )


def _sqlite_revision(database_url: str) -> str | None:
    path = Path(_SQLITE.sub("", database_url, count=1).partition("?")[0])
    if not path.is_file():
        raise DatabaseNotReady(
            f"the SQLite database {path} does not exist: run `service migrate` (the release "
            "phase) first, or check DATABASE_URL"
        )
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: never migrated
        return None
    finally:
        connection.close()
    return str(row[0]) if row else None


async def _postgres_revision(database_url: str) -> str | None:
    dsn = _POSTGRES.sub("postgresql://", database_url, count=1)
    connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    try:
        value = await connection.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await connection.close()
    return str(value) if value is not None else None


def describe(error: BaseException) -> str:
    """One line: the driver's own message and what to check."""
    message = " ".join(str(error).split()) or "no message"
    kind = type(error).__name__
    if kind != "Error":  # the asyncpg adapter's catch-all class of SQLAlchemy says nothing
        message = f"{kind}: {message}"
    return (
        f"cannot use the database ({message}); check DATABASE_URL and that the database "
        "server is up and the database exists"
    )
