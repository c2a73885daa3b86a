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

What test modules import (settings, databases, accounts) is in ``tests/helpers.py``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol
from sqlalchemy.engine import make_url

from harness.live_server import LiveServer, start_live_server
from service import create_app
from service.config import Settings
from service.services import services
from tests.helpers import (
    BACKENDS,
    Account,
    AppFactory,
    Kept,
    app_factory,
    delete_all_rows,
    empty_database,
    make_settings,
    migrated_database,
    postgres_skipped,
    sign_up,
)
from tests.mailbox import Mailbox
from tests.signing import ALGORITHMS, SigningKey, new_key
from tests.smtp_server import SmtpServer

#: How the suite shares the cores under pytest-xdist: the ``serial`` mark, heavy tests first.
pytest_plugins = ("tests.parallel",)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if postgres_skipped:
        terminalreporter.write_sep(
            "!", "POSTGRESQL HALF OF THE SUITE WAS SKIPPED", red=True, bold=True
        )
        terminalreporter.write_line(postgres_skipped[0], red=True)


@pytest.fixture(scope="session")
def kept() -> Iterator[Kept]:
    with ExitStack() as stack:
        yield Kept(stack)


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


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    """The service on an emptied database, served in-process (``before_serving`` runs)."""
    application = create_app(settings)
    async with application.test_app():
        await delete_all_rows(services(application))
        yield application


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    """Builds served apps on this test's database, each with the settings its call names
    (``tests.helpers.app_factory``); every app is stopped when the test ends."""
    async with app_factory(database_url, {}) as build:
        yield build


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


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
