"""Every start-up failure is one line on stderr naming the cause and the setting, status 1.

The commands run as real processes: the Procfile's ``web:`` line (through bash, as a platform
runs it) and ``service serve``, against a port somebody holds, a PostgreSQL port nobody
listens on, a database name the shared server does not have, a bad setting or key.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest

from harness.live_server import free_port, procfile_commands
from service.config import ConfigurationError, Settings, load_settings
from tests.helpers import TEST_MFA_KEY, postgres_admin_url

ROOT = Path(__file__).resolve().parent.parent
SERVICE_COMMAND = str(Path(sys.executable).with_name("service"))
STRONG_SECRET = "start-up-test-secret-0123456789-abcdefghijklmnop"


def clean_environment(tmp_path: Path, **values: str) -> dict[str, str]:
    """The current environment without any of the service's settings, plus ``values``."""
    names = {name.upper() for name in Settings.model_fields} | {"CONFIG_DIR", "INSTANCE_DIR"}
    env = {name: value for name, value in os.environ.items() if name not in names}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/service.db", INSTANCE_DIR=str(tmp_path))
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    if values.get("APP_ENV") == "production":  # production refuses to start without one
        env.update(MFA_ENCRYPTION_KEY=TEST_MFA_KEY)
    env.update(values)
    return env


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with none of the service's variables and no config file."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    return monkeypatch


def test_production_without_a_secret_key_is_refused(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("APP_ENV", "production")
    with pytest.raises(ConfigurationError, match="SECRET_KEY must be set in production"):
        load_settings()


def test_each_bad_setting_is_named_by_its_variable(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("BCRYPT_ROUNDS", "2")
    environment.setenv("DATABASE_URL", "mysql://db/service")
    environment.setenv("LOG_LEVEL", "chatty")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "BCRYPT_ROUNDS: Input should be greater than or equal to 4" in message
    assert "DATABASE_URL:" in message
    assert "LOG_LEVEL:" in message


def test_an_unknown_app_env_is_named(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("APP_ENV", "prod")
    with pytest.raises(ConfigurationError, match="APP_ENV: Input should be"):
        load_settings()


def test_a_weak_secret_is_refused_without_printing_it(environment: pytest.MonkeyPatch) -> None:
    weak = "my-own-little-secret"
    environment.setenv("APP_ENV", "production")
    environment.setenv("SECRET_KEY", weak)
    with pytest.raises(ConfigurationError, match="SECRET_KEY is too weak") as raised:
        load_settings()
    assert weak not in str(raised.value)


def test_migrate_exits_non_zero_naming_the_missing_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [SERVICE_COMMAND, "migrate"],
        cwd=ROOT,
        env=clean_environment(tmp_path, APP_ENV="production"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "service.db").exists(), "nothing is migrated with a bad setting"


WEB = procfile_commands()["web"]
#: The two ways to start the server: the Procfile's ``web:`` line and the quick start's command.
COMMANDS = {"web": ["bash", "-c", f"exec {WEB}"], "serve": [SERVICE_COMMAND, "serve"]}


def start(command: str, tmp_path: Path, cwd: Path = ROOT, **values: str) -> tuple[int, str]:
    """Start ``command`` in production on a free port; its exit status and stderr once it ends."""
    port = values.pop("PORT", None) or str(free_port())
    env = clean_environment(
        tmp_path, APP_ENV="production", SECRET_KEY=STRONG_SECRET, PORT=port, WEB_CONCURRENCY="2"
    )
    env.update(values)
    argv = COMMANDS[command] + (["--port", port] if command == "serve" else [])
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    return result.returncode, result.stderr


def one_line(stderr: str) -> str:
    """The only line of ``stderr``; fails on a traceback, a repeated message or anything else."""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("service: "), lines[0]
    return lines[0]


def test_the_procfile_web_command_checks_in_the_master() -> None:
    """The web: line runs ``service serve`` (the checks, PORT read by the command) with
    WEB_CONCURRENCY and config/hypercorn.toml, never bare Hypercorn (whose workers fail one
    by one, status 0)."""
    assert WEB.startswith("service serve --no-migrate ")
    for part in ("--config config/hypercorn.toml", "--host 0.0.0.0", "${WEB_CONCURRENCY:-2}"):
        assert part in WEB


@pytest.mark.parametrize("command", COMMANDS)
def test_production_without_a_secret_key_fails_once_with_status_1(
    command: str, tmp_path: Path
) -> None:
    status, stderr = start(command, tmp_path, SECRET_KEY="")
    assert status == 1
    line = one_line(stderr)
    assert "SECRET_KEY must be set in production" in line
    assert not (tmp_path / "service.db").exists(), "nothing is migrated with a bad setting"


@pytest.mark.parametrize("command", COMMANDS)
def test_several_bad_settings_share_one_line_without_their_values(
    command: str, tmp_path: Path
) -> None:
    status, stderr = start(command, tmp_path, BCRYPT_ROUNDS="2", LOG_LEVEL="chatty-verbose")
    assert status == 1
    line = one_line(stderr)
    assert "BCRYPT_ROUNDS: Input should be greater than or equal to 4" in line
    assert "LOG_LEVEL:" in line
    assert "chatty-verbose" not in line


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unusable_key_is_named(command: str, tmp_path: Path) -> None:
    status, stderr = start(
        command, tmp_path, JWT_ALGORITHM="ES256", JWT_PRIVATE_KEY="not a pem", SECRET_KEY=""
    )
    assert status == 1
    assert "JWT_PRIVATE_KEY" in one_line(stderr)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_port_in_use_is_named(command: str, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))  # noqa: S104 (the web: line binds 0.0.0.0)
        holder.listen()
        port = str(holder.getsockname()[1])
        status, stderr = start(command, tmp_path, PORT=port)
    assert status == 1
    line = one_line(stderr)
    assert f":{port} (the address is already in use" in line
    assert "PORT" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_postgresql_down_is_named(command: str, tmp_path: Path) -> None:
    closed = f"postgresql://postgres:hunter2-secret@127.0.0.1:{free_port()}/service"
    status, stderr = start(command, tmp_path, DATABASE_URL=closed)
    assert status == 1
    line = one_line(stderr)
    assert "ConnectionRefusedError" in line
    assert "DATABASE_URL" in line
    assert "hunter2-secret" not in line


def missing_database_url() -> str:
    """A database name the shared PostgreSQL server does not have (nothing is created)."""
    server = postgres_admin_url().rsplit("/", 1)[0]
    return f"{server}/no_such_database_{secrets.token_hex(6)}"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_postgresql_database_is_named(command: str, tmp_path: Path) -> None:
    url = missing_database_url()
    status, stderr = start(command, tmp_path, DATABASE_URL=url)
    line = one_line(stderr)
    if "ConnectionRefusedError" in line:
        pytest.skip(f"no PostgreSQL server at {postgres_admin_url()}")
    assert status == 1
    assert f'database "{url.rsplit("/", 1)[1]}" does not exist' in line
    assert "DATABASE_URL" in line


def test_the_web_command_refuses_an_unmigrated_sqlite_database(tmp_path: Path) -> None:
    status, stderr = start("web", tmp_path)
    assert status == 1
    assert "does not exist: run `service migrate`" in one_line(stderr)
    assert not (tmp_path / "service.db").exists(), "the check creates no empty database"


def test_the_web_command_refuses_a_database_behind_the_migrations(
    empty_database_url: str, tmp_path: Path
) -> None:
    if empty_database_url.startswith("sqlite"):
        sqlite3.connect(empty_database_url.removeprefix("sqlite:///")).close()
    status, stderr = start("web", tmp_path, DATABASE_URL=empty_database_url)
    assert status == 1
    line = one_line(stderr)
    assert "schema is at revision none" in line
    assert "run `service migrate`" in line


def test_a_missing_hypercorn_file_is_named(tmp_path: Path) -> None:
    """The Procfile names config/hypercorn.toml itself; ``serve`` looks in CONFIG_DIR."""
    status, stderr = start("serve", tmp_path, CONFIG_DIR=str(tmp_path))
    assert status == 1
    assert f"{tmp_path}/hypercorn.toml not found" in one_line(stderr)


def test_serve_from_another_directory_uses_the_checkout_config(tmp_path: Path) -> None:
    """``uv run --project checkout service serve`` from elsewhere: config/ of the checkout."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    status, stderr = start(
        "serve", tmp_path, cwd=elsewhere, DATABASE_URL=f"postgresql://x@127.0.0.1:{free_port()}/x"
    )
    assert status == 1
    line = one_line(stderr)
    assert "not found" not in line, "hypercorn.toml was found in the checkout"
    assert "ConnectionRefusedError" in line


@pytest.mark.e2e
def test_a_worker_that_dies_stops_the_server_with_status_1(tmp_path: Path) -> None:
    """Hypercorn 0.18 returns 0 when its workers die; the web command says 1 (a crash)."""
    url = f"sqlite:///{tmp_path}/service.db"
    migrated = subprocess.run(
        [SERVICE_COMMAND, "migrate"],
        cwd=ROOT,
        env=clean_environment(tmp_path, APP_ENV="production", SECRET_KEY=STRONG_SECRET),
        capture_output=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    env = clean_environment(
        tmp_path, APP_ENV="production", SECRET_KEY=STRONG_SECRET, PORT=str(port)
    )
    env.update(DATABASE_URL=url, WEB_CONCURRENCY="1")
    web = subprocess.Popen(
        COMMANDS["web"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        worker = wait_for_worker(web.pid, port)
        os.kill(worker, signal.SIGKILL)
        _, stderr = web.communicate(timeout=30)
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
    assert web.returncode == 1
    assert "service: the server stopped: its workers exited" in stderr.decode()


def wait_for_worker(master: int, port: int) -> int:
    """The pid of a Hypercorn worker of ``master`` once the server answers on ``port``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            workers = [int(pid) for pid in children if "spawn_main" in cmdline(int(pid))]
            if workers:
                return workers[0]
        time.sleep(0.1)
    raise AssertionError("the server did not start")


def cmdline(pid: int) -> str:
    with suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    return ""
