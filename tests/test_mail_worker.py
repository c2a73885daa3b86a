"""``service send-mail``, the Procfile's ``worker:`` process, as a real process on both databases.

Messages are queued by a web app in the test process (its own sender off, as with
``MAIL_SEND_IN_WEB=false``); the worker delivers them to a real SMTP server and stops cleanly
on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from quart import Quart

from harness.live_server import procfile_commands
from service.config import Settings
from service.services import services
from tests.helpers import TEST_SECRET
from tests.smtp_server import SmtpServer
from tests.test_mail_sender import queue, rows, until_rows
from tests.test_startup_errors import SERVICE_COMMAND, clean_environment

#: Seconds a worker may take to start and send (imports and checks; a busy machine is slow).
STARTUP = 60.0


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def worker_environment(tmp_path: Path, database_url: str, **values: str) -> dict[str, str]:
    env = clean_environment(
        tmp_path,
        APP_ENV="testing",
        SECRET_KEY=TEST_SECRET,
        MAIL_FROM="noreply@service.example",
        MAIL_POLL_INTERVAL="0.2",
        LOG_LEVEL="INFO",
        **values,
    )
    env["DATABASE_URL"] = database_url
    return env


@dataclass
class Worker:
    """A running ``service send-mail``; its output once it ended."""

    process: subprocess.Popen[str]
    out: str = ""
    err: str = ""


@asynccontextmanager
async def send_mail_process(env: dict[str, str]) -> AsyncIterator[Worker]:
    """Run ``service send-mail`` for the block, then stop it with SIGTERM; a failure in the
    block shows the worker's output."""
    process = subprocess.Popen(  # noqa: ASYNC220 (waited for in a thread below)
        [SERVICE_COMMAND, "send-mail"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = Worker(process)
    try:
        yield worker
    finally:
        process.send_signal(signal.SIGTERM)
        worker.out, worker.err = await asyncio.to_thread(process.communicate, timeout=30)
        print(f"--- service send-mail output:\n{worker.out}{worker.err}")  # shown on failure


def test_the_procfile_runs_send_mail_as_its_worker() -> None:
    assert procfile_commands()["worker"] == "service send-mail"


async def test_the_worker_delivers_what_the_web_queued_and_stops_on_sigterm(
    app: Quart, settings: Settings, smtp: SmtpServer, tmp_path: Path
) -> None:
    await queue(app, "before")  # committed before the worker starts
    env = worker_environment(
        tmp_path, settings.database_url, SMTP_URL=f"smtp+plain://127.0.0.1:{smtp.port}"
    )
    async with send_mail_process(env) as worker:
        await smtp.wait_for(1, within=STARTUP)
        await queue(app, "after")  # found by the worker's poll
        await smtp.wait_for(2, within=10)
        await until_rows(services(app).db, "sent", 2)

    assert worker.process.returncode == 0
    assert "Traceback" not in worker.err
    assert f"via 127.0.0.1:{smtp.port} (none)" in worker.out
    assert "mail sender stopped" in worker.err
    assert sorted(str(m["Subject"]) for m in smtp.received) == [
        "Test message for after",
        "Test message for before",
    ]
    assert all(row.attempts == 1 for row in await rows(services(app).db))


def test_the_worker_refuses_to_run_with_email_off(tmp_path: Path, database_url: str) -> None:
    env = worker_environment(tmp_path, database_url, EMAIL_ENABLED="false")

    result = subprocess.run(
        [SERVICE_COMMAND, "send-mail"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "service: EMAIL_ENABLED is off, so there is no mail to send: set SMTP_URL (or "
        "EMAIL_ENABLED=true outside production), or do not run this process"
    ]


def test_the_worker_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = worker_environment(tmp_path, f"sqlite:///{tmp_path}/missing.db")

    result = subprocess.run(
        [SERVICE_COMMAND, "send-mail"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "run `service migrate`" in result.stderr
    assert not os.path.exists(tmp_path / "missing.db")


async def test_the_worker_logs_to_the_console_without_smtp_url(
    app: Quart, settings: Settings, tmp_path: Path
) -> None:
    await queue(app, "Ada")
    async with send_mail_process(worker_environment(tmp_path, settings.database_url)) as worker:
        await until_rows(services(app).db, "sent", 1, within=STARTUP)

    assert worker.process.returncode == 0
    assert "via the log (SMTP_URL is not set)" in worker.out
    [line] = [line for line in worker.err.splitlines() if "NOT SENT" in line]
    assert "https://service.example/hello?name=Ada" in line
