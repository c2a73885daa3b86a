"""What test modules share that is not a fixture: settings, databases, accounts, served apps.

Fixtures live in ``tests/conftest.py`` and are built from these; a test module imports from
here, never from ``conftest.py`` (pytest loads that itself, and ``tests/test_test_layout.py``
keeps it so).

- **Settings**: ``make_settings`` gives the settings every test app starts from (fast bcrypt,
  no mail sender in the web process, the strict refresh rotation) plus a test's overrides.
- **Databases**: ``BACKENDS`` names the two the suite runs on; ``empty_database`` makes a new
  one of either (a temporary SQLite file, a PostgreSQL database dropped afterwards),
  ``migrated_database`` migrates it as the release phase does, ``delete_all_rows`` empties
  one between tests. PostgreSQL comes from ``TEST_POSTGRES_URL`` (``postgres_admin_url``).
- **Accounts**: ``Account`` is a signed-up, logged-in user; ``sign_up`` and ``log_in`` make one
  through the HTTP API, as a client would.
- **Served apps**: ``app_factory`` builds apps with settings overrides (``make_app`` fixtures).
- **Kept**: a session fixture's value kept per parameter for the whole run (pytest-xdist).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import (
    AbstractContextManager,
    AsyncExitStack,
    ExitStack,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from service import create_app
from service.config import Settings
from service.db.migrate import upgrade
from service.db.models import Base
from service.services import Services, services

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
#: 32 bytes in base64url, as ``MFA_ENCRYPTION_KEY`` takes them (production requires one).
TEST_MFA_KEY = "dGVzdC1tZmEta2V5LTMyLWJ5dGVzLWxvbmctLS0tLS0"
BACKENDS = ("sqlite", "postgresql")

#: Why the PostgreSQL half was skipped, for the run's summary (``tests/conftest.py``).
postgres_skipped: list[str] = []


def postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


async def execute_as_postgres_admin(statement: str) -> None:
    """Run one statement on the server of ``postgres_admin_url`` (create or drop a database)."""
    connection = await asyncpg.connect(postgres_admin_url(), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_postgres_database() -> str:
    """The URL of a new PostgreSQL database; skips the test (fails under ``CI``) without one."""
    name = f"service_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(execute_as_postgres_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        message = f"PostgreSQL at {postgres_admin_url()} is not reachable: {error!r}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI requires PostgreSQL)", pytrace=False)
        postgres_skipped.append(message)
        pytest.skip(f"POSTGRESQL TESTS SKIPPED: {message}")
    url = make_url(postgres_admin_url()).set(database=name)
    return url.render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(execute_as_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "testing",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "mfa_encryption_key": TEST_MFA_KEY,
        "bcrypt_rounds": 4,
        "password_hash_priority": "normal",  # as config/testing.env says why
        "log_level": "WARNING",
        # No mail sender in the apps of the tests: a queued message stays pending for the
        # test to read; the mail tests start senders of their own (tests/test_mail_*.py).
        "mail_send_in_web": False,
        # The strict rule, which most rotation tests check; the reuse-interval tests
        # (tests/test_refresh_grace.py) ask for an interval.
        "refresh_reuse_interval": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class Kept:
    """What a session fixture makes once per parameter and keeps until the session ends.

    pytest ends a parametrized session fixture when the next test asks for another parameter;
    a pytest-xdist worker gets the SQLite and PostgreSQL tests in turns, and would migrate a
    new database (or start a new server) at every turn. Kept, each is made once per worker.
    """

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._made: dict[str, Any] = {}

    def get(self, key: str, make: Callable[[], AbstractContextManager[Any]]) -> Any:
        if key not in self._made:
            self._made[key] = self._stack.enter_context(make())
        return self._made[key]


@contextmanager
def empty_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database (no tables: the release phase migrates it)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/service.db"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[str]:
    with empty_database(backend, directory) as url:
        upgrade(make_settings(url))
        yield url


async def delete_all_rows(services: Services) -> None:
    async with services.db.write() as db:
        for table in reversed(Base.metadata.sorted_tables):
            await db.run(delete(table))


@dataclass
class Account:
    """A signed-up, logged-in user as a test sees it."""

    id: str
    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def with_tokens(self, tokens: dict[str, Any]) -> Account:
        """The same user with the pair of a token response (another login, a refresh)."""
        return replace(
            self, access_token=tokens["access_token"], refresh_token=tokens["refresh_token"]
        )


async def sign_up(
    client: TestClientProtocol, username: str, password: str = "s3cret-passw0rd"
) -> Account:
    response = await client.post("/signup", json={"username": username, "password": password})
    assert response.status_code == 201, await response.get_data(as_text=True)
    user_id = (await response.get_json())["id"]
    tokens = await log_in(client, username, password)
    return Account(user_id, username, password, tokens["access_token"], tokens["refresh_token"])


async def log_in(client: TestClientProtocol, username: str, password: str) -> dict[str, Any]:
    response = await client.post("/login", form={"username": username, "password": password})
    assert response.status_code == 200, await response.get_data(as_text=True)
    body: dict[str, Any] = await response.get_json()
    return body


#: Builds a served app on the test database with settings overrides (``make_app`` fixtures).
AppFactory = Callable[..., Awaitable[Quart]]


@asynccontextmanager
async def app_factory(database_url: str, defaults: dict[str, Any]) -> AsyncIterator[AppFactory]:
    """Build served apps on the test database: ``defaults``, then each call's overrides.

    The rows are deleted once, before the first app; every app is stopped when the block ends.
    """
    async with AsyncExitStack() as stack:
        emptied = False

        async def build(**overrides: Any) -> Quart:
            nonlocal emptied
            application = create_app(make_settings(database_url, **{**defaults, **overrides}))
            await stack.enter_async_context(application.test_app())  # type: ignore[arg-type]
            if not emptied:
                await delete_all_rows(services(application))
                emptied = True
            return application

        yield build
