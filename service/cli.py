"""The ``service`` command: serve, migrate, send mail, create users and set their roles, purge
old rows, export the OpenAPI document, make keys.

Only ``click`` is imported up front: ``service --help`` and ``service keygen`` must not pay for
Quart, SQLAlchemy and Alembic (most of the start-up time is imports, docs/startup.md). Each
command imports what it uses when it runs.
"""

# ruff: noqa: PLC0415 (the imports inside the commands are this module's design)

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import uuid
    from collections.abc import AsyncIterator

    from service.accounts.queries import UserRecord
    from service.accounts.schemas import SignupRequest
    from service.security import keys
    from service.services import Services
    from service.settings import Settings


@click.group()
def main() -> None:
    """Manage the service."""


@main.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def migrate_command(revision: str) -> None:
    """Apply the database migrations to DATABASE_URL (the Procfile's release phase).

    Checks every setting the web process will read first, token keys included, so that a
    deploy with a bad setting fails here rather than in every web worker.
    """
    from service.db import migrate

    settings = _checked_settings()
    try:
        migrate.upgrade(settings, revision)
    except migrate.DatabaseNotReady as error:
        raise _failure(error) from None
    click.echo(f"database at revision {revision}")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", type=int, default=None, help="Defaults to PORT, else 8000 (not in production)."
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Hypercorn settings (default: hypercorn.toml in CONFIG_DIR, ./config or the checkout's "
    "config/).",
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Apply the migrations first, or (the Procfile's web: command, after the release "
    "phase) only check that the database is at the head revision.",
)
def serve_command(
    host: str, port: int | None, workers: int, config_path: Path | None, migrate: bool
) -> None:
    """Check everything, then serve with Hypercorn: the quick start and the Procfile's web:.

    Settings, token keys, the database and the address are checked once, before any worker
    starts (service/serving.py); a problem ends the command with one line and status 1.
    """
    from service import serving
    from service.db.ready import DatabaseNotReady, check_ready, database_location

    settings = _checked_settings()
    try:
        config = serving.hypercorn_config(config_path, workers=workers)
        port = serving.serving_port(settings, port)
        serving.listen(config, host, port)
        if migrate:
            from service.db.migrate import upgrade

            upgrade(settings)
        else:
            check_ready(settings.database_url)
    except (serving.StartupError, DatabaseNotReady) as error:
        raise _failure(error) from None
    click.echo(f"database: {database_location(settings.database_url)}")
    click.echo(f"serving on http://{host}:{port} (docs at /docs)")
    status = serving.run_hypercorn(config)
    if status != 0:
        raise _failure(
            "the server stopped: its workers exited without being asked to (their messages "
            "are above)"
        )


@main.command("send-mail")
def send_mail_command() -> None:
    """Deliver queued email until SIGTERM or Ctrl-C: the Procfile's worker: process.

    Checks the settings and that the database is at the head revision first. Run it with
    MAIL_SEND_IN_WEB=false on the web process, or beside web senders: any number of senders
    share one outbox and never send a message twice on purpose (docs/mail.md).
    """
    import asyncio

    from service.db.ready import DatabaseNotReady, check_ready, database_location
    from service.logs import configure_logging
    from service.mail.process import send_until_stopped
    from service.mail.smtp_url import parse_smtp_url

    settings = _checked_settings()
    if not settings.email_enabled:
        raise _failure(
            "EMAIL_ENABLED is off, so there is no mail to send: set SMTP_URL (or "
            "EMAIL_ENABLED=true outside production), or do not run this process"
        )
    try:
        check_ready(settings.database_url)
    except DatabaseNotReady as error:
        raise _failure(error) from None
    configure_logging(settings)
    if settings.smtp_url is None:
        via = "the log (SMTP_URL is not set)"
    else:
        server = parse_smtp_url(settings.smtp_url.get_secret_value())
        via = f"{server.host}:{server.port} ({server.security})"
    click.echo(f"sending mail from {database_location(settings.database_url)} via {via}")
    asyncio.run(send_until_stopped(settings))


#: ``--algorithm`` values of ``keygen``; EdDSA is the older name of Ed25519 (RFC 9864).
KEYGEN_ALGORITHMS: dict[str, keys.AsymmetricAlgorithm] = {
    "RS256": "RS256",
    "ES256": "ES256",
    "Ed25519": "Ed25519",
    "EdDSA": "Ed25519",
}


@main.command("keygen")
@click.option(
    "--algorithm",
    required=True,
    type=click.Choice(list(KEYGEN_ALGORITHMS)),
    help="JWT_ALGORITHM the key is for (RS256 keys get 3072 bits).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the key to this new file (mode 0600) instead of standard output.",
)
def keygen_command(algorithm: str, out: Path | None) -> None:
    """Make a token signing key: PEM for JWT_PRIVATE_KEY(_FILE); its kid goes to stderr.

    Also the first step of a key rotation (docs/keys.md). An existing file is
    never overwritten.
    """
    from service.security import keys

    key = keys.generate_private_key(KEYGEN_ALGORITHMS[algorithm])
    pem = keys.private_key_pem(key)
    if out is None:
        click.echo(pem, nl=False)
    else:
        _write_private(out, pem)
    click.echo(f"kid: {keys.key_id(key)}", err=True)


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; refuse to replace a file (maybe a live key)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; remove it or choose another --out") from None
    except OSError as error:
        raise click.ClickException(f"cannot create {path}: {error.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(text)


@main.command("create-user")
@click.argument("username")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@click.option("--admin", is_flag=True, help="Give the account the admin role.")
def create_user_command(username: str, password_stdin: bool, admin: bool) -> None:
    """Create an account in DATABASE_URL under the rules of POST /signup.

    The password is asked twice at a hidden prompt, or read from standard input with
    --password-stdin (for scripts: it never shows in the shell history or the process list).
    A taken username or a password the policy refuses ends with status 1 and the reason.
    With --admin the account can use the admin API (/admin); this is how the first admin
    is made.
    """
    from pydantic import ValidationError

    from service.accounts.schemas import SignupRequest
    from service.errors import validation_errors

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        signup = SignupRequest.model_validate({"username": username, "password": password})
    except ValidationError as error:
        reasons = "; ".join(
            f"{problem['field']}: {problem['message']}" for problem in validation_errors(error)
        )
        raise click.ClickException(f"refused: {reasons}") from None
    import asyncio

    user = asyncio.run(_register(_checked_settings(), signup, admin=admin))
    role = " with the admin role" if admin else ""
    click.echo(f"created user {user.username} ({user.id}){role}")


def _checked_settings() -> Settings:
    """The settings, with the token keys they name loaded once; a problem ends the command."""
    from service.keyring import load_key_set
    from service.settings import ConfigurationError, load_settings_or_exit

    settings = load_settings_or_exit()
    try:
        load_key_set(settings)
    except ConfigurationError as error:
        raise _failure(error) from None
    return settings


def _failure(error: Exception | str) -> SystemExit:
    """End the command with ``service: <one line>`` on stderr and status 1, no traceback."""
    return SystemExit(f"service: {error}")


async def _register(settings: Settings, signup: SignupRequest, *, admin: bool) -> UserRecord:
    from service.accounts.flows import register
    from service.security.events import security_event
    from service.security.roles import Role

    role = Role.ADMIN if admin else Role.USER
    async with _services(settings) as services:
        user = await register(services, signup.username, signup.password, role)
    if admin:
        from service.admin.actions import Actor

        security_event(
            "admin_action",
            action="create_admin",
            actor=Actor.command_line().name,
            target_user_id=user.id,
            role=role.value,
        )
    return user


@asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[Services]:
    """The services for one command; an ``ApiError`` (taken, not found) or an unreachable or
    unmigrated database ends the command with status 1 and the reason."""
    from sqlalchemy.exc import DBAPIError

    from service.db.migrate import describe
    from service.errors import ApiError
    from service.services import Services

    services = Services.from_settings(settings)
    try:
        yield services
    except ApiError as error:
        raise click.ClickException(error.detail) from None
    except (DBAPIError, OSError) as error:
        message = describe(error)
        raise click.ClickException(f"{message}, and migrated (`service migrate`)") from None
    finally:
        await services.close()


@main.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(["admin", "user"]))
def set_role_command(username: str, role: str) -> None:
    """Give the account USERNAME (any letter case) the role admin or user, at once.

    A demoted admin loses the admin API at their next request, even with a token issued
    before. Logged as an admin_action security event naming the operating system user.
    """
    import asyncio

    user = asyncio.run(_set_role(_checked_settings(), username, role))
    click.echo(f"{user.username} ({user.id}) is now {user.role}")


async def _set_role(settings: Settings, username: str, role: str) -> UserRecord:
    from service.admin import actions
    from service.security.roles import Role

    async with _services(settings) as services:
        return await actions.set_role_by_username(
            services, actions.Actor.command_line(), username, Role(role)
        )


@main.command("purge")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=100_000),
    default=1000,
    show_default=True,
    help="Rows deleted per transaction.",
)
def purge_command(batch_size: int) -> None:
    """Delete sessions that ended more than PURGE_AFTER ago and expired idempotency keys.

    Safe while the service serves (short transactions of --batch-size rows) and idempotent:
    run it daily (docs/deployment.md). Prints the rows deleted of each kind.
    """
    import asyncio

    from service.purge import purge

    async def run() -> dict[str, int]:
        async with _services(_checked_settings()) as services:
            return await purge(services, batch_size=batch_size)

    for name, count in asyncio.run(run()).items():
        click.echo(f"{name}: {count} deleted")


@main.command("mfa-off")
@click.argument("username")
def mfa_off_command(username: str) -> None:
    """Turn off USERNAME's second factor, without a code: for an owner who lost both the
    authenticator app and the recovery codes.

    Check who is asking first, out of band: this is account recovery. Every session of the
    account ends, and the security log records it (`mfa_disabled`, `how=operator`).
    """
    import asyncio

    user_id = asyncio.run(_mfa_off(_checked_settings(), username))
    click.echo(f"second factor of {username} ({user_id}) turned off; its sessions ended")


async def _mfa_off(settings: Settings, username: str) -> uuid.UUID:
    from sqlalchemy.exc import DBAPIError

    from service.db.migrate import describe
    from service.errors import ApiError
    from service.mfa.flows import reset as reset_second_factor
    from service.services import Services

    services = Services.from_settings(settings)
    try:
        return await reset_second_factor(services, username)
    except ApiError as error:  # no such user, or no factor
        raise click.ClickException(error.detail) from None
    except (DBAPIError, OSError) as error:
        message = describe(error)
        raise click.ClickException(f"{message}, and migrated (`service migrate`)") from None
    finally:
        await services.close()


@main.command("openapi")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the document to this file instead of standard output.",
)
def openapi_command(out: Path | None) -> None:
    """Export the OpenAPI document (what /openapi.json serves) as JSON.

    Needs no configuration, no database and no secret: the document depends on no setting.
    """
    import json

    text = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


#: A database URL that is never connected to: engines connect on first use only.
_NO_DATABASE = "postgresql://openapi.invalid/unused"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as ``/openapi.json`` serves it, from an app on default settings.

    The environment is ignored (``default_settings``), so a half-configured shell still exports
    the same document.
    """
    import asyncio

    from service.app import create_app
    from service.services import services
    from service.settings import default_settings

    settings = default_settings(
        app_env="testing", database_url=_NO_DATABASE, bcrypt_rounds=4, log_level="WARNING"
    )
    app = create_app(settings)

    async def fetch() -> dict[str, Any]:
        response = await app.test_client().get("/openapi.json")
        document: dict[str, Any] = await response.get_json()
        await services(app).close()
        return document

    return asyncio.run(fetch())
