"""The ``service`` command as an operator uses it: migrate, create-user, openapi.

Each test gets a new, empty database of each backend and configures the command through the
environment, as the Procfile and a shell do. Results are checked the way a user would: the
created account logs in over HTTP, the exported document is the one ``/openapi.json`` serves.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from service import create_app
from service.cli import main
from service.config import Settings
from service.db.engine import async_url
from tests.helpers import make_settings

PASSWORD = "copper-kettle-42"

Invoke = Callable[..., Result]


@pytest.fixture
def service_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Invoke:
    """``service_command(*args, input=None, **env)``: run ``service`` with only these settings."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))  # no config/<APP_ENV>.env
    monkeypatch.setenv("APP_ENV", "testing")
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")

    def invoke(*args: str, input: str | None = None, **env: str) -> Result:
        return CliRunner().invoke(main, list(args), input=input, env=env)

    return invoke


@pytest.fixture
def migrated_url(empty_database_url: str, service_command: Invoke) -> str:
    """A new database of each backend, migrated with ``service migrate``."""
    result = service_command("migrate", DATABASE_URL=empty_database_url)
    assert result.exit_code == 0, result.output
    return empty_database_url


def tables(database_url: str) -> set[str]:
    async def names() -> set[str]:
        engine = create_async_engine(async_url(database_url))
        try:
            async with engine.connect() as connection:
                found: list[str] = await connection.run_sync(
                    lambda sync: inspect(sync).get_table_names()
                )
        finally:
            await engine.dispose()
        return set(found)

    return asyncio.run(names())


def log_in(database_url: str, username: str, password: str) -> int:
    """The status of ``POST /login`` with these credentials, served on that database."""

    async def attempt() -> int:
        app = create_app(make_settings(database_url))
        async with app.test_app() as test_app:
            response = await test_app.test_client().post(
                "/login", form={"username": username, "password": password}
            )
            return response.status_code

    return asyncio.run(attempt())


# --- migrate --------------------------------------------------------------------------------


def test_migrate_creates_the_schema_and_can_run_again(
    empty_database_url: str, service_command: Invoke
) -> None:
    first = service_command("migrate", DATABASE_URL=empty_database_url)
    again = service_command("migrate", DATABASE_URL=empty_database_url)

    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert "database at revision head" in first.output
    assert {"users", "sessions", "items", "alembic_version"} <= tables(empty_database_url)


def test_migrate_without_a_database_says_so_without_a_traceback(service_command: Invoke) -> None:
    result = service_command(
        "migrate", DATABASE_URL="postgresql://admin:hunter2-secret@127.0.0.1:1/service"
    )

    assert result.exit_code == 1
    assert "cannot use the database (ConnectionRefusedError" in result.output
    assert "check DATABASE_URL" in result.output
    assert "Traceback" not in result.output
    assert "hunter2-secret" not in result.output


def test_migrate_with_a_bad_setting_names_it(service_command: Invoke) -> None:
    result = service_command("migrate", DATABASE_URL="mysql://localhost/service")

    assert result.exit_code == 1
    assert "DATABASE_URL" in result.output


# --- create-user ----------------------------------------------------------------------------


def test_create_user_from_stdin_makes_an_account_that_logs_in(
    migrated_url: str, service_command: Invoke
) -> None:
    result = service_command(
        "create-user", "alice", "--password-stdin", input=f"{PASSWORD}\n", DATABASE_URL=migrated_url
    )

    assert result.exit_code == 0, result.output
    assert "created user alice" in result.output
    assert PASSWORD not in result.output
    assert log_in(migrated_url, "alice", PASSWORD) == 200
    assert log_in(migrated_url, "alice", PASSWORD + "x") == 400


def test_create_user_keeps_spaces_inside_the_password(
    migrated_url: str, service_command: Invoke
) -> None:
    password = f"  {PASSWORD} with spaces "
    result = service_command(
        "create-user",
        "alice",
        "--password-stdin",
        input=f"{password}\r\n",
        DATABASE_URL=migrated_url,
    )

    assert result.exit_code == 0, result.output
    assert log_in(migrated_url, "alice", password) == 200


def test_create_user_prompts_twice_without_echo(migrated_url: str, service_command: Invoke) -> None:
    result = service_command(
        "create-user", "alice", input=f"{PASSWORD}\n{PASSWORD}\n", DATABASE_URL=migrated_url
    )

    assert result.exit_code == 0, result.output
    assert "Password" in result.output
    assert "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output
    assert log_in(migrated_url, "alice", PASSWORD) == 200


def test_create_user_asks_again_when_the_two_prompts_differ(
    migrated_url: str, service_command: Invoke
) -> None:
    result = service_command(
        "create-user",
        "alice",
        input=f"{PASSWORD}\nsomething-else-1\n{PASSWORD}\n{PASSWORD}\n",
        DATABASE_URL=migrated_url,
    )

    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert log_in(migrated_url, "alice", PASSWORD) == 200


def test_create_user_refuses_a_taken_username_in_any_letter_case(
    migrated_url: str, service_command: Invoke
) -> None:
    def create(username: str, password: str) -> Result:
        return service_command(
            "create-user",
            username,
            "--password-stdin",
            input=f"{password}\n",
            DATABASE_URL=migrated_url,
        )

    assert create("alice", PASSWORD).exit_code == 0
    result = create("ALICE", "another-password-9")

    assert result.exit_code == 1
    assert "already taken" in result.output
    assert log_in(migrated_url, "alice", PASSWORD) == 200  # the first account is untouched


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "short", "password: String should have at least 8 characters"),
        ("alice", "password123", "password: is one of the most commonly used passwords"),
        ("alice-long-name", "Alice-Long-Name", "password: must not be the same as the username"),
        ("al ice", PASSWORD, "username: may contain only the characters _ . @ + - besides"),
        ("alice", "", "password: String should have at least 8 characters"),
    ],
)
def test_create_user_applies_the_signup_rules(
    migrated_url: str, service_command: Invoke, username: str, password: str, reason: str
) -> None:
    result = service_command(
        "create-user",
        username,
        "--password-stdin",
        input=f"{password}\n",
        DATABASE_URL=migrated_url,
    )

    assert result.exit_code == 1
    assert reason in result.output
    assert "^[" not in result.output  # rules in words, never a regular expression
    assert log_in(migrated_url, username, password) == 400  # nothing was created


def test_create_user_on_an_unmigrated_database_points_at_migrate(
    empty_database_url: str, service_command: Invoke
) -> None:
    result = service_command(
        "create-user",
        "alice",
        "--password-stdin",
        input=f"{PASSWORD}\n",
        DATABASE_URL=empty_database_url,
    )

    assert result.exit_code == 1
    assert "service migrate" in result.output
    assert "Traceback" not in result.output
    assert PASSWORD not in result.output


# --- openapi --------------------------------------------------------------------------------


def served_document(database_url: str) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        app = create_app(make_settings(database_url))
        async with app.test_app() as test_app:
            document: dict[str, Any] = await (
                await test_app.test_client().get("/openapi.json")
            ).get_json()
            return document

    return asyncio.run(fetch())


def test_openapi_prints_the_document_the_service_serves(
    migrated_url: str, service_command: Invoke
) -> None:
    result = service_command("openapi")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == served_document(migrated_url)


def test_openapi_writes_a_file_and_needs_no_database_or_secret(
    service_command: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "openapi.json"
    result = service_command(
        "openapi",
        "--out",
        str(out),
        APP_ENV="production",  # would refuse to start the service without SECRET_KEY
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/nowhere",
    )

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["openapi"].startswith("3.1")
    assert "/items/{item_id}" in document["paths"]
    assert result.stdout == ""


# --- start-up cost --------------------------------------------------------------------------

#: Imported only by the commands that serve or touch the database (docs/startup.md).
HEAVY_MODULES = ("quart", "quart_schema", "hypercorn", "sqlalchemy", "alembic", "pydantic")


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["keygen", "--help"]])
def test_help_imports_no_framework_and_no_database_layer(argv: list[str]) -> None:
    """``service --help`` stays fast: the heavy modules load in the commands that use them."""
    probe = (
        "import sys\n"
        "from service.cli import main\n"
        f"main({argv!r}, standalone_mode=False)\n"
        f"print(sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]"
