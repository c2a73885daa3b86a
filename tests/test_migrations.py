"""Alembic migrations: they build exactly the tables of ``models`` and can be undone and redone.

Each revision that reshapes tables holding rows is a ``MigrationStep`` (its seed, its
expectations), and one parametrized test runs every step on both backends; a new revision
adds a step to ``MIGRATION_STEPS``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from tests.helpers import make_settings

TIMESTAMP = sa.DateTime(timezone=True)


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


# Each revision that reshapes tables holding rows: a database at an older revision gets rows
# written as that revision's code wrote them (naming only the columns it had), then
# goes to the head, back to the older revision and to the head again. A step says where it
# starts, what it writes and what it expects after each way; the test below runs them all.


@dataclass(frozen=True)
class MigrationStep:
    """One revision's test: rows written at ``start``, checked at the head and back at ``start``.

    ``upgraded`` and ``downgraded`` take the database URL and assert (``run_on`` reads it).
    """

    start: str
    seed: Callable[[Connection], None]
    upgraded: Callable[[str], None]
    downgraded: Callable[[str], None]


INSERT_USER = sa.text(
    "INSERT INTO users (id, username, username_key, password_hash, created_at) "
    "VALUES (:id, :name, :name, 'x', :now)"
).bindparams(sa.bindparam("id", type_=sa.Uuid()), sa.bindparam("now", type_=TIMESTAMP))
INSERT_SESSION = sa.text(
    "INSERT INTO sessions (id, user_id, refresh_jti, created_at, last_used_at, expires_at) "
    "VALUES (:id, :user_id, :refresh_jti, :now, :now, :now)"
).bindparams(
    sa.bindparam("id", type_=sa.Uuid()),
    sa.bindparam("user_id", type_=sa.Uuid()),
    sa.bindparam("now", type_=TIMESTAMP),
)
INSERT_ITEM = sa.text(
    "INSERT INTO items (id, owner_id, name, version, created_at, updated_at) "
    "VALUES (:id, :owner_id, 'Book', 1, :now, :now)"
).bindparams(
    sa.bindparam("id", type_=sa.Uuid()),
    sa.bindparam("owner_id", type_=sa.Uuid()),
    sa.bindparam("now", type_=TIMESTAMP),
)


def insert_user(connection: Connection, user_id: uuid.UUID, now: datetime, name: str = "a") -> None:
    connection.execute(INSERT_USER, {"id": user_id, "name": name, "now": now})


def insert_session(
    connection: Connection, user_id: uuid.UUID, now: datetime, refresh_jti: str = "j"
) -> None:
    values = {"id": uuid.uuid4(), "user_id": user_id, "refresh_jti": refresh_jti, "now": now}
    connection.execute(INSERT_SESSION, values)


def insert_item(connection: Connection, owner_id: uuid.UUID, now: datetime) -> None:
    connection.execute(INSERT_ITEM, {"id": uuid.uuid4(), "owner_id": owner_id, "now": now})


def row_counts(*tables: str) -> Callable[[Connection], tuple[int, ...]]:
    """A reading of how many rows each of ``tables`` holds, for ``run_on``."""

    def count(connection: Connection) -> tuple[int, ...]:
        return tuple(
            connection.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
            for name in tables
        )

    return count


def column_names(table: str) -> Callable[[Connection], set[str]]:
    def names(connection: Connection) -> set[str]:
        return {column["name"] for column in inspect(connection).get_columns(table)}

    return names


def idempotency_keys_0002() -> MigrationStep:
    """Upgrade from revision 0001 keeps every row; downgrading drops only the new table."""
    user_id, now = uuid.uuid4(), datetime.now(UTC)
    counts = row_counts("users", "items")

    def seed(connection: Connection) -> None:
        insert_user(connection, user_id, now)
        insert_item(connection, user_id, now)
        connection.commit()

    def upgraded(url: str) -> None:
        assert "idempotency_keys" in run_on(url, table_names)
        assert run_on(url, counts) == (1, 1)

    def downgraded(url: str) -> None:
        assert "idempotency_keys" not in run_on(url, table_names)
        assert run_on(url, counts) == (1, 1)

    return MigrationStep("0001", seed, upgraded, downgraded)


def outbox_0003() -> MigrationStep:
    """Upgrade from 0002 keeps users, sessions and items; downgrading drops only the outbox."""
    user_id, now = uuid.uuid4(), datetime.now(UTC)
    counts = row_counts("users", "sessions", "items")

    def seed(connection: Connection) -> None:
        insert_user(connection, user_id, now)
        insert_session(connection, user_id, now)
        insert_item(connection, user_id, now)
        connection.commit()

    def upgraded(url: str) -> None:
        assert "outbox" in run_on(url, table_names)
        assert run_on(url, counts) == (1, 1, 1)

    def downgraded(url: str) -> None:
        assert "outbox" not in run_on(url, table_names)
        assert run_on(url, counts) == (1, 1, 1)

    return MigrationStep("0002", seed, upgraded, downgraded)


def email_columns_and_account_tokens_0004() -> MigrationStep:
    """A database at 0002 with users, sessions and items upgrades with every row intact; the
    new columns are empty and usable, a verified address unique; downgrading drops them and
    keeps the rows."""
    user_id, other_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    counts = row_counts("users", "sessions", "items")

    def seed(connection: Connection) -> None:
        insert_user(connection, user_id, now, name="a")
        insert_user(connection, other_id, now, name="b")
        insert_session(connection, user_id, now)
        insert_item(connection, user_id, now)
        connection.commit()

    def use_the_new_columns(connection: Connection) -> list[str]:
        users = Base.metadata.tables["users"]
        tokens = Base.metadata.tables["account_tokens"]
        assert connection.execute(
            sa.select(users.c.email, users.c.email_verified_at).where(users.c.id == user_id)
        ).one() == (None, None)
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(email="a@example.com", email_key="a@example.com")
        )
        connection.execute(
            tokens.insert().values(
                token_hash="0" * 64,
                user_id=user_id,
                purpose="verify_email",
                binding="a@example.com",
                created_at=now,
                expires_at=now,
            )
        )
        connection.commit()
        errors = []
        # At the head an unverified address is a claim that two accounts may make; a verified
        # one is unique.
        connection.execute(
            users.update().where(users.c.id == other_id).values(email_key="a@example.com")
        )
        connection.execute(
            users.update().where(users.c.id == user_id).values(email_verified_at=now)
        )
        try:
            connection.execute(
                users.update().where(users.c.id == other_id).values(email_verified_at=now)
            )
        except sa.exc.IntegrityError:
            errors.append("duplicate verified email refused")
        connection.rollback()
        return errors

    def upgraded(url: str) -> None:
        assert run_on(url, counts) == (2, 1, 1)
        assert run_on(url, use_the_new_columns) == ["duplicate verified email refused"]

    def downgraded(url: str) -> None:
        assert "account_tokens" not in run_on(url, table_names)
        assert run_on(url, counts) == (2, 1, 1)
        assert "email" not in run_on(url, column_names("users"))

    return MigrationStep("0002", seed, upgraded, downgraded)


def roles_0005() -> MigrationStep:
    """A database at 0002 with a user, a session, an item and an idempotency key upgrades
    without loss (the user becomes an active ``user``), works, and downgrades to 0002 intact."""
    user_id, now = uuid.uuid4(), datetime.now(UTC)
    counts = row_counts("users", "sessions", "items", "idempotency_keys")

    def seed(connection: Connection) -> None:
        insert_user(connection, user_id, now)
        insert_session(connection, user_id, now)
        insert_item(connection, user_id, now)
        connection.execute(
            Base.metadata.tables["idempotency_keys"]
            .insert()
            .values(scope="signup", key="k", fingerprint="f", created_at=now, expires_at=now)
        )
        connection.commit()

    def role_of_the_user(connection: Connection) -> tuple[str, bool]:
        users = Base.metadata.tables["users"]
        row = connection.execute(
            sa.select(users.c.role, users.c.is_active).where(users.c.id == user_id)
        ).one()
        return row.role, row.is_active

    def upgraded(url: str) -> None:
        assert run_on(url, counts) == (1, 1, 1, 1)
        assert run_on(url, role_of_the_user) == ("user", True)

    def downgraded(url: str) -> None:
        assert run_on(url, counts) == (1, 1, 1, 1)
        assert {"role", "is_active"}.isdisjoint(run_on(url, column_names("users")))

    return MigrationStep("0002", seed, upgraded, downgraded)


def second_factor_0006() -> MigrationStep:
    """From 0002 with users, sessions and items: every row stays, existing sessions become
    password logins (``amr`` ``pwd``); downgrading drops the new tables and column only."""
    user_id, now = uuid.uuid4(), datetime.now(UTC)
    counts = row_counts("users", "sessions", "items")
    mfa_tables = {"totp_factors", "recovery_codes", "mfa_challenges"}

    def seed(connection: Connection) -> None:
        insert_user(connection, user_id, now)
        insert_session(connection, user_id, now)
        insert_item(connection, user_id, now)
        connection.commit()

    def session_amr(connection: Connection) -> list[str]:
        return list(connection.execute(sa.text("SELECT amr FROM sessions")).scalars())

    def upgraded(url: str) -> None:
        assert mfa_tables <= run_on(url, table_names)
        assert run_on(url, counts) == (1, 1, 1)
        assert run_on(url, session_amr) == ["pwd"]

    def downgraded(url: str) -> None:
        assert not mfa_tables & run_on(url, table_names)
        assert "amr" not in run_on(url, column_names("sessions"))
        assert run_on(url, counts) == (1, 1, 1)

    return MigrationStep("0002", seed, upgraded, downgraded)


def refresh_grace_columns_0007() -> MigrationStep:
    """Upgrade from 0002 keeps users, sessions and items; the new columns start empty (no
    rotation yet); downgrading drops only them."""
    user_id, now = uuid.uuid4(), datetime.now(UTC)

    def seed(connection: Connection) -> None:
        insert_user(connection, user_id, now)
        insert_session(connection, user_id, now, refresh_jti="jti-1")
        insert_item(connection, user_id, now)
        connection.commit()

    def rows(connection: Connection) -> list[Any]:
        found = connection.execute(sa.text("SELECT * FROM sessions")).mappings().all()
        return [*row_counts("users", "items")(connection), [dict(row) for row in found]]

    def upgraded(url: str) -> None:
        users, items, sessions = run_on(url, rows)
        assert (users, items, len(sessions)) == (1, 1, 1)
        assert sessions[0]["refresh_jti"] == "jti-1"
        assert sessions[0]["previous_jti"] is None
        assert sessions[0]["rotated_at"] is None

    def downgraded(url: str) -> None:
        users, items, sessions = run_on(url, rows)
        assert (users, items, len(sessions)) == (1, 1, 1)
        assert sessions[0]["refresh_jti"] == "jti-1"
        assert "previous_jti" not in sessions[0]

    return MigrationStep("0002", seed, upgraded, downgraded)


def canonical_addresses_0008() -> MigrationStep:
    """From 0007 with addresses as the old code stored them: each becomes canonical (the
    domain as its A-label, the key folding ASCII letters only) and its pending verification
    link follows it; two verified addresses that become one stay with the first to verify,
    the other account keeps it as an unverified claim; an address that needs SMTPUTF8 (it
    could not have been stored) goes. Downgrading restores the old forms and the old unique
    index, each old address with one account."""
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    ids = {name: uuid.uuid4() for name in ("alice", "x1", "x2", "y", "z", "office", "long")}
    long_local = "l" * 70
    # name: (email, email_key, verified at, created at), as revision 0004's code wrote them.
    seeded = {
        "alice": ("Alice@example.com", "alice@example.com", now, now - 9 * hour),
        "x1": ("x@straße.example", "x@strasse.example", now - 2 * hour, now - 8 * hour),
        # The same domain written as its A-label (an older normaliser, a manual fix).
        "x2": ("x@xn--strae-oqa.example", "x@xn--strae-oqa.example", now - hour, now - 9 * hour),
        "y": ("Y@strasse.example", "y@strasse.example", None, now - 7 * hour),
        "z": ("Z@faß.de", "z@fass.de", None, now - 6 * hour),
        "office": ("oﬃce@example.com", "office@example.com", now, now - 5 * hour),
        "long": (f"{long_local}@example.com", f"{long_local}@example.com", now, now - 4 * hour),
    }

    def seed(connection: Connection) -> None:
        for name, (email, key, verified_at, created_at) in seeded.items():
            connection.execute(
                sa.text(
                    "INSERT INTO users (id, username, username_key, password_hash, created_at, "
                    "email, email_key, email_verified_at) "
                    "VALUES (:id, :name, :name, 'x', :created, :email, :key, :verified)"
                ).bindparams(
                    sa.bindparam("id", type_=sa.Uuid()),
                    sa.bindparam("created", type_=TIMESTAMP),
                    sa.bindparam("verified", type_=TIMESTAMP),
                ),
                {
                    "id": ids[name],
                    "name": name,
                    "created": created_at,
                    "email": email,
                    "key": key,
                    "verified": verified_at,
                },
            )
        for number, (name, binding) in enumerate(
            [("y", "y@strasse.example"), ("z", "z@fass.de"), ("office", "office@example.com")]
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO account_tokens (token_hash, user_id, purpose, binding, "
                    "created_at, expires_at) VALUES (:hash, :user_id, 'verify_email', "
                    ":binding, :now, :later)"
                ).bindparams(
                    sa.bindparam("user_id", type_=sa.Uuid()),
                    sa.bindparam("now", type_=TIMESTAMP),
                    sa.bindparam("later", type_=TIMESTAMP),
                ),
                {
                    "hash": str(number) * 64,
                    "user_id": ids[name],
                    "binding": binding,
                    "now": now,
                    "later": now + hour,
                },
            )
        connection.commit()

    def addresses(connection: Connection) -> dict[str, tuple[str | None, str | None, bool]]:
        rows = connection.execute(
            sa.text("SELECT username, email, email_key, email_verified_at FROM users")
        )
        return {row[0]: (row[1], row[2], row[3] is not None) for row in rows}

    def bindings(connection: Connection) -> dict[str, str]:
        rows = connection.execute(
            sa.text(
                "SELECT users.username, account_tokens.binding FROM account_tokens "
                "JOIN users ON users.id = account_tokens.user_id"
            )
        )
        return {row[0]: row[1] for row in rows}

    def verify_twice(connection: Connection) -> list[str]:
        """A claim of a verified address is allowed; a second verified copy is refused."""
        found = []
        users = sa.table(
            "users", sa.column("id", sa.Uuid()), sa.column("email_verified_at", TIMESTAMP)
        )
        try:
            connection.execute(
                users.update().where(users.c.id == ids["x2"]).values(email_verified_at=now)
            )
        except sa.exc.IntegrityError:
            found.append("second verified copy refused")
        connection.rollback()
        return found

    def upgraded(url: str) -> None:
        assert run_on(url, addresses) == {
            "alice": ("Alice@example.com", "alice@example.com", True),
            "x1": ("x@xn--strae-oqa.example", "x@xn--strae-oqa.example", True),
            "x2": ("x@xn--strae-oqa.example", "x@xn--strae-oqa.example", False),
            "y": ("Y@strasse.example", "y@strasse.example", False),
            "z": ("Z@xn--fa-hia.de", "z@xn--fa-hia.de", False),
            "office": (None, None, False),
            "long": (f"{long_local}@example.com", f"{long_local}@example.com", True),
        }
        assert run_on(url, bindings) == {
            "y": "y@strasse.example",
            "z": "z@xn--fa-hia.de",
        }
        assert run_on(url, verify_twice) == ["second verified copy refused"]

    def downgraded(url: str) -> None:
        assert run_on(url, addresses) == {
            "alice": ("Alice@example.com", "alice@example.com", True),
            "x1": ("x@straße.example", "x@strasse.example", True),
            "x2": (None, None, False),  # the old index allows one account per folded address
            "y": ("Y@strasse.example", "y@strasse.example", False),
            "z": ("Z@faß.de", "z@fass.de", False),
            "office": (None, None, False),
            "long": (f"{long_local}@example.com", f"{long_local}@example.com", True),
        }
        assert run_on(url, bindings) == {"y": "y@strasse.example", "z": "z@fass.de"}

    return MigrationStep("0007", seed, upgraded, downgraded)


MIGRATION_STEPS = [
    idempotency_keys_0002,
    outbox_0003,
    email_columns_and_account_tokens_0004,
    roles_0005,
    second_factor_0006,
    refresh_grace_columns_0007,
    canonical_addresses_0008,
]


@pytest.mark.parametrize("make_step", MIGRATION_STEPS, ids=lambda make: make.__name__)
def test_a_revision_keeps_the_rows_going_up_and_back(
    make_step: Callable[[], MigrationStep], empty_database_url: str
) -> None:
    """Each step's rows survive the upgrade to the head and the downgrade back to its start;
    the head matches the models both times (the steps' docstrings say what each expects)."""
    step = make_step()
    settings = make_settings(empty_database_url)
    upgrade(settings, step.start)
    run_on(empty_database_url, step.seed)

    upgrade(settings)  # to the head: the models describe the head's tables

    step.upgraded(empty_database_url)
    assert run_on(empty_database_url, differences) == []

    downgrade(settings, step.start)

    step.downgraded(empty_database_url)
    assert run_on(empty_database_url, current_revision) == step.start

    upgrade(settings)

    assert run_on(empty_database_url, differences) == []
