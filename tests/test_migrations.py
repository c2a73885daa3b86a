"""Alembic migrations: they build exactly the tables of ``models`` and can be undone and redone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from service.db import async_url
from service.migrate import alembic_config, downgrade, upgrade
from service.models import Base
from tests.conftest import (
    BACKENDS,
    _create_postgres_database,
    _drop_postgres_database,
    make_settings,
)


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each backend with nothing in it, only for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh/service.db"
        return
    url = _create_postgres_database()
    try:
        yield url
    finally:
        _drop_postgres_database(url)


def run_on(database_url: str, inspect_with: Any) -> Any:
    """Run ``inspect_with(sync_connection)`` on the database; its result."""

    async def run() -> Any:
        engine = create_async_engine(async_url(database_url), poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(inspect_with)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    found: list[Any] = compare_metadata(context, Base.metadata)
    return found


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision(database_url: str) -> str | None:
    script = ScriptDirectory.from_config(alembic_config(make_settings(database_url)))
    return script.get_current_head()


def test_the_migrations_have_a_single_head(empty_database: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(make_settings(empty_database)))
    assert len(script.get_heads()) == 1


def test_upgrade_head_builds_exactly_the_models_tables(empty_database: str) -> None:
    upgrade(make_settings(empty_database))

    assert run_on(empty_database, differences) == []
    assert run_on(empty_database, table_names) == set(Base.metadata.tables) | {"alembic_version"}
    assert run_on(empty_database, current_revision) == head_revision(empty_database)


def test_upgrade_head_twice_changes_nothing(empty_database: str) -> None:
    upgrade(make_settings(empty_database))
    upgrade(make_settings(empty_database))

    assert run_on(empty_database, differences) == []


def test_downgrade_base_then_upgrade_head(empty_database: str) -> None:
    settings = make_settings(empty_database)
    upgrade(settings)

    downgrade(settings, "base")

    assert run_on(empty_database, table_names) <= {"alembic_version"}
    assert run_on(empty_database, current_revision) is None

    upgrade(settings)

    assert run_on(empty_database, differences) == []
    assert run_on(empty_database, current_revision) == head_revision(empty_database)


def test_the_comparison_would_notice_a_missing_table(empty_database: str) -> None:
    """Guards the test above: the comparison is not vacuous."""
    settings = make_settings(empty_database)
    upgrade(settings)

    def drop_items(connection: Connection) -> list[Any]:
        Base.metadata.tables["items"].drop(connection)
        return differences(connection)

    found = run_on(empty_database, drop_items)

    assert found[0][0] == "add_table"
    assert found[0][1].name == "items"
