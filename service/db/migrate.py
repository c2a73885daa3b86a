"""Apply the Alembic migrations from code: ``service migrate``, the Procfile's release phase, tests.

The Alembic configuration is built here rather than read from an ``alembic.ini``, so the
migrations ship inside the package and find the same ``DATABASE_URL`` as the service.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from service.db.engine import async_url
from service.settings import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", "service.db:migrations")
    url = async_url(settings.database_url).render_as_string(hide_password=False)
    config.attributes["database_url"] = url
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision``; creates a missing SQLite file and its directory."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)
