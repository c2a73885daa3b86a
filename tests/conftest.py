"""Fixtures: a migrated database per backend per run, an app and a client per test, users.

Every test that uses ``app`` (or anything built on it) runs twice: on SQLite and on PostgreSQL.
Each run gets fresh databases (a temporary SQLite file; a new PostgreSQL database dropped at the
end), migrated with Alembic as production is. Tests stay independent: rows of every table are
deleted before each test, which, unlike a rolled-back outer transaction, also works for tests
that commit from several connections at once (races) or from another process (end-to-end).

``live_server`` (and ``empty_database_url`` with ``harness.live_server.start_live_server``) run the
service as production does, the Procfile's release and web commands, for tests over real HTTP.

PostgreSQL comes from ``TEST_POSTGRES_URL`` (default: the local server, trust auth). If it
cannot be reached the PostgreSQL half is skipped with a loud warning, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import asyncio
import logging
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

from harness.live_server import LiveServer, start_live_server
from service import create_app
from service.config import Settings
from service.db.migrate import upgrade
from service.db.models import Base
from service.services import Services, services
from tests.mailbox import Mailbox
from tests.signing import ALGORITHMS, SigningKey, new_key
from tests.smtp_server import SmtpServer

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
#: 32 bytes in base64url, as ``MFA_ENCRYPTION_KEY`` takes them (production requires one).
TEST_MFA_KEY = "dGVzdC1tZmEta2V5LTMyLWJ5dGVzLWxvbmctLS0tLS0"
BACKENDS = ("sqlite", "postgresql")

#: How the suite shares the cores under pytest-xdist: the ``serial`` mark, heavy tests first.
pytest_plugins = ("tests.parallel",)

_postgres_skipped: list[str] = []


def postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(postgres_admin_url(), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _create_postgres_database() -> str:
    name = f"service_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        message = f"PostgreSQL at {postgres_admin_url()} is not reachable: {error!r}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI requires PostgreSQL)", pytrace=False)
        _postgres_skipped.append(message)
        pytest.skip(f"POSTGRESQL TESTS SKIPPED: {message}")
    url = make_url(postgres_admin_url()).set(database=name)
    return url.render_as_string(hide_password=False)


def _drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _postgres_skipped:
        terminalreporter.write_sep(
            "!", "POSTGRESQL HALF OF THE SUITE WAS SKIPPED", red=True, bold=True
        )
        terminalreporter.write_line(_postgres_skipped[0], red=True)


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


@pytest.fixture(scope="session")
def kept() -> Iterator[Kept]:
    with ExitStack() as stack:
        yield Kept(stack)


@contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[str]:
    with empty_database(backend, directory) as url:
        upgrade(make_settings(url))
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kept: Kept
) -> str:
    """A freshly migrated database of each backend, shared by the run's tests."""
    backend: str = request.param
    url: str = kept.get(
        f"database-{backend}", lambda: migrated_database(backend, tmp_path_factory.mktemp(backend))
    )
    return url


@pytest.fixture
def backend(database_url: str) -> str:
    return make_url(database_url).get_backend_name()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


async def delete_all_rows(services: Services) -> None:
    async with services.db.write() as db:
        for table in reversed(Base.metadata.sorted_tables):
            await db.run(delete(table))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    """The service on an emptied database, served in-process (``before_serving`` runs)."""
    application = create_app(settings)
    async with application.test_app():
        await delete_all_rows(services(application))
        yield application


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


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


@pytest.fixture(scope="session")
def key_pool() -> dict[str, list[SigningKey]]:
    """Three keys per signing algorithm, made once per run; each test module gives them roles."""
    return {algorithm: [new_key(algorithm) for _ in range(3)] for algorithm in ALGORITHMS}


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    """Each signing algorithm in turn (tests that take it run once per algorithm)."""
    name: str = request.param
    return name


@pytest.fixture
async def alice(client: TestClientProtocol) -> Account:
    return await sign_up(client, "alice")


@pytest.fixture
async def bob(client: TestClientProtocol) -> Account:
    return await sign_up(client, "bob")


@contextmanager
def empty_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database (no tables: the release phase migrates it)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/service.db"
        return
    url = _create_postgres_database()
    try:
        yield url
    finally:
        _drop_postgres_database(url)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, unmigrated database of each backend, dropped after the test."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kept: Kept
) -> LiveServer:
    """The Procfile's release and web commands serving a fresh database of each backend.

    One server per backend for the whole run (production settings, two workers): tests that
    share it sign up their own users. At the end it is stopped with SIGTERM, and a traceback
    in its output or an unclean exit fails the run.
    """
    backend: str = request.param

    @contextmanager
    def serve() -> Iterator[LiveServer]:
        directory = tmp_path_factory.mktemp(f"live-{backend}")
        with (
            empty_database(backend, directory) as url,
            start_live_server(url, directory) as server,
        ):
            yield server

    server: LiveServer = kept.get(f"live-server-{backend}", serve)
    return server


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


@pytest.fixture
def security_events() -> Iterator[list[logging.LogRecord]]:
    """The records logged on ``service.security`` during the test."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[assignment]
    logger = logging.getLogger("service.security")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on a free port (``tests/smtp_server.py``)."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(app: Quart, smtp_server: SmtpServer) -> Mailbox:
    """What the test's ``app`` mails, as ``smtp_server`` received it; the app must send to it
    (``settings`` made with ``tests.mailbox.mail_settings``)."""
    return Mailbox(app, smtp_server)


@pytest.fixture
def mailbox_for(smtp_server: SmtpServer) -> Callable[[Quart], Mailbox]:
    """A ``Mailbox`` for an app the test built itself with ``mail_settings``."""
    return lambda app: Mailbox(app, smtp_server)
