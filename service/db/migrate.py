"""Apply the Alembic migrations from code: ``service migrate``, ``service serve``, tests.

``upgrade`` turns a database it cannot reach into ``DatabaseNotReady``, whose message is one
line naming the cause and what to change, never the driver's traceback.

The Alembic configuration is built here rather than read from an ``alembic.ini``, so the
migrations ship inside the package and find the same ``DATABASE_URL`` as the service.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import DBAPIError

from service.config import Settings
from service.db import ready
from service.db.engine import async_url
from service.db.ready import DatabaseNotReady

__all__ = ["DatabaseNotReady", "alembic_config", "describe", "downgrade", "upgrade"]


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


def describe(error: DBAPIError | OSError) -> str:
    """One line: the driver's own message (SQLAlchemy's would show the statement) and the fix."""
    cause = error.orig if isinstance(error, DBAPIError) else None
    return ready.describe(cause or error)
