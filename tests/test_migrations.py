"""Alembic migrations: they build exactly the tables of ``models`` and can be undone and redone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from service.db.engine import async_url
from service.db.migrate import alembic_config, downgrade, upgrade
from service.db.models import Base
from service.db.ready import SCHEMA_HEAD, database_location
from tests.conftest import (
    make_settings,
)


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


def test_the_migrations_have_a_single_head(empty_database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(make_settings(empty_database_url)))
    assert len(script.get_heads()) == 1


def test_upgrade_head_builds_exactly_the_models_tables(empty_database_url: str) -> None:
    upgrade(make_settings(empty_database_url))

    assert run_on(empty_database_url, differences) == []
    assert run_on(empty_database_url, table_names) == set(Base.metadata.tables) | {
        "alembic_version"
    }
    assert run_on(empty_database_url, current_revision) == head_revision(empty_database_url)


def test_upgrade_head_twice_changes_nothing(empty_database_url: str) -> None:
    upgrade(make_settings(empty_database_url))
    upgrade(make_settings(empty_database_url))

    assert run_on(empty_database_url, differences) == []


def test_downgrade_base_then_upgrade_head(empty_database_url: str) -> None:
    settings = make_settings(empty_database_url)
    upgrade(settings)

    downgrade(settings, "base")

    assert run_on(empty_database_url, table_names) <= {"alembic_version"}
    assert run_on(empty_database_url, current_revision) is None

    upgrade(settings)

    assert run_on(empty_database_url, differences) == []
    assert run_on(empty_database_url, current_revision) == head_revision(empty_database_url)


def test_the_comparison_would_notice_a_missing_table(empty_database_url: str) -> None:
    """Guards the test above: the comparison is not vacuous."""
    settings = make_settings(empty_database_url)
    upgrade(settings)

    def drop_items(connection: Connection) -> list[Any]:
        Base.metadata.tables["items"].drop(connection)
        return differences(connection)

    found = run_on(empty_database_url, drop_items)

    assert found[0][0] == "add_table"
    assert found[0][1].name == "items"


def test_upgrade_creates_a_missing_sqlite_directory(tmp_path: Path) -> None:
    database = tmp_path / "not" / "yet" / "service.db"

    upgrade(make_settings(f"sqlite:///{database}"))

    assert database.is_file()


def test_0002_adds_idempotency_keys_to_a_database_with_data_and_goes_back(
    empty_database_url: str,
) -> None:
    """Upgrade from revision 0001 keeps every row; downgrading drops only the new table."""
    settings = make_settings(empty_database_url)
    upgrade(settings, "0001")
    user_id = uuid.uuid4()
    now = datetime.now(UTC)

    def seed(connection: Connection) -> None:
        users = Base.metadata.tables["users"]
        items = Base.metadata.tables["items"]
        connection.execute(
            users.insert().values(
                id=user_id, username="a", username_key="a", password_hash="x", created_at=now
            )
        )
        connection.execute(
            items.insert().values(
                id=uuid.uuid4(),
                owner_id=user_id,
                name="Book",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        connection.commit()

    def counts(connection: Connection) -> tuple[int, int]:
        users, items = (Base.metadata.tables[name] for name in ("users", "items"))
        count = sa.func.count()
        return (
            connection.execute(sa.select(count).select_from(users)).scalar_one(),
            connection.execute(sa.select(count).select_from(items)).scalar_one(),
        )

    run_on(empty_database_url, seed)
    upgrade(settings)

    assert "idempotency_keys" in run_on(empty_database_url, table_names)
    assert run_on(empty_database_url, counts) == (1, 1)
    assert run_on(empty_database_url, differences) == []

    downgrade(settings, "0001")

    assert "idempotency_keys" not in run_on(empty_database_url, table_names)
    assert run_on(empty_database_url, counts) == (1, 1)
    assert run_on(empty_database_url, current_revision) == "0001"


def test_0007_adds_the_refresh_grace_columns_to_sessions_with_data_and_goes_back(
    empty_database_url: str,
) -> None:
    """Upgrade from 0002 keeps users, sessions and items; the new columns start empty (no
    rotation yet); downgrading drops only them."""
    settings = make_settings(empty_database_url)
    upgrade(settings, "0002")
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)

    def seed(connection: Connection) -> None:
        connection.execute(
            sa.text(
                "INSERT INTO users (id, username, username_key, password_hash, created_at) "
                "VALUES (:id, 'a', 'a', 'x', :now)"
            ).bindparams(sa.bindparam("id", type_=sa.Uuid()), now=now),
            {"id": user_id},
        )
        connection.execute(
            sa.text(
                "INSERT INTO sessions (id, user_id, refresh_jti, created_at, last_used_at, "
                "expires_at) VALUES (:id, :user_id, 'jti-1', :now, :now, :now)"
            ).bindparams(
                sa.bindparam("id", type_=sa.Uuid()),
                sa.bindparam("user_id", type_=sa.Uuid()),
                now=now,
            ),
            {"id": session_id, "user_id": user_id},
        )
        connection.execute(
            Base.metadata.tables["items"]
            .insert()
            .values(
                id=uuid.uuid4(),
                owner_id=user_id,
                name="Book",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        connection.commit()

    def rows(connection: Connection) -> list[Any]:
        found = connection.execute(sa.text("SELECT * FROM sessions")).mappings().all()
        count = sa.func.count()
        items = Base.metadata.tables["items"]
        users = Base.metadata.tables["users"]
        return [
            connection.execute(sa.select(count).select_from(users)).scalar_one(),
            connection.execute(sa.select(count).select_from(items)).scalar_one(),
            [dict(row) for row in found],
        ]

    run_on(empty_database_url, seed)
    upgrade(settings)

    users, items, sessions = run_on(empty_database_url, rows)
    assert (users, items, len(sessions)) == (1, 1, 1)
    assert sessions[0]["refresh_jti"] == "jti-1"
    assert sessions[0]["previous_jti"] is None
    assert sessions[0]["rotated_at"] is None
    assert run_on(empty_database_url, differences) == []

    downgrade(settings, "0002")

    users, items, sessions = run_on(empty_database_url, rows)
    assert (users, items, len(sessions)) == (1, 1, 1)
    assert sessions[0]["refresh_jti"] == "jti-1"
    assert "previous_jti" not in sessions[0]
    assert run_on(empty_database_url, current_revision) == "0002"


def test_the_start_up_check_knows_the_head_revision() -> None:
    """``service.db.ready`` checks the schema without Alembic: its head must be Alembic's."""
    scripts = ScriptDirectory.from_config(alembic_config(make_settings("sqlite:///unused.db")))
    assert set(scripts.get_heads()) == {SCHEMA_HEAD}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///instance/x.db", f"SQLite file {Path('instance/x.db').resolve()}"),
        ("sqlite+aiosqlite:////tmp/y.db", "SQLite file /tmp/y.db"),
        (
            "postgresql://u:secret@db.example:5432/app?sslmode=require",
            "PostgreSQL at db.example:5432/app",
        ),
        ("postgres://u:secret@h/d", "PostgreSQL at h/d"),
    ],
)
def test_start_up_says_where_the_database_is_without_its_password(url: str, expected: str) -> None:
    """``service serve`` prints this line: a relative SQLite path becomes the absolute one."""
    assert database_location(url) == expected
    assert "secret" not in database_location(url)
