"""The ``service`` command: serve, migrate, create users, export the OpenAPI document, make keys."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from hypercorn.config import Config
from hypercorn.run import run
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy.exc import DBAPIError

from service.app import create_app
from service.auth import users
from service.auth.schemas import SignupRequest
from service.db import migrate
from service.errors import ApiError, validation_errors
from service.keyring import load_key_set
from service.security import keys
from service.services import Services, services
from service.settings import Settings, exit_on_configuration_error, load_settings_or_exit

HYPERCORN_CONFIG = "config/hypercorn.toml"
APPLICATION = "service:create_app()"


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
    settings = _checked_settings()
    try:
        migrate.upgrade(settings, revision)
    except (DBAPIError, OSError) as error:
        raise _database_trouble(error) from None
    click.echo(f"database at revision {revision}")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Defaults to PORT (8000).")
@click.option("--workers", type=int, default=1, show_default=True)
def serve_command(host: str, port: int | None, workers: int) -> None:
    """Apply migrations, then serve with Hypercorn (config/hypercorn.toml)."""
    settings = _checked_settings()
    migrate.upgrade(settings)
    config = Config.from_toml(HYPERCORN_CONFIG)
    config.application_path = APPLICATION
    config.bind = [f"{host}:{port or settings.port}"]
    config.workers = workers
    click.echo(f"serving on http://{host}:{port or settings.port} (docs at /docs)")
    raise SystemExit(run(config))


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
def create_user_command(username: str, password_stdin: bool) -> None:
    """Create an account in DATABASE_URL under the rules of POST /signup.

    The password is asked twice at a hidden prompt, or read from standard input with
    --password-stdin (for scripts: it never shows in the shell history or the process list).
    A taken username or a password the policy refuses ends with status 1 and the reason.
    """
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
    user = asyncio.run(_register(load_settings_or_exit(), signup))
    click.echo(f"created user {user.username} ({user.id})")


def _checked_settings() -> Settings:
    """The settings, with the token keys they name checked; a problem ends the command."""
    settings = load_settings_or_exit()
    with exit_on_configuration_error():
        load_key_set(settings)
    return settings


async def _register(settings: Settings, signup: SignupRequest) -> users.UserRecord:
    with exit_on_configuration_error():
        services = Services.from_settings(settings)
    try:
        return await users.register(services, signup.username, signup.password)
    except ApiError as error:  # the username is taken
        raise click.ClickException(error.detail) from None
    except (DBAPIError, OSError) as error:
        raise _database_trouble(error, " and migrated (`service migrate`)") from None
    finally:
        await services.close()


def _database_trouble(error: DBAPIError | OSError, hint: str = "") -> click.ClickException:
    """The driver's own message, without SQLAlchemy's (which would show the statement)."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    return click.ClickException(
        f"database error ({type(cause).__name__}: {cause}); check DATABASE_URL and that the "
        f"database is up{hint}"
    )


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
    text = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


class _DefaultSettings(Settings):
    """Settings from keyword arguments and defaults only: no environment, no ``.env`` file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


#: A database URL that is never connected to: engines connect on first use only.
_NO_DATABASE = "postgresql://openapi.invalid/unused"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as ``/openapi.json`` serves it, from an app on default settings.

    The environment is ignored (``_DefaultSettings``), so a half-configured shell still exports
    the same document.
    """
    settings = _DefaultSettings(
        app_env="testing", database_url=_NO_DATABASE, bcrypt_rounds=4, log_level="WARNING"
    )
    app = create_app(settings)

    async def fetch() -> dict[str, Any]:
        response = await app.test_client().get("/openapi.json")
        document: dict[str, Any] = await response.get_json()
        await services(app).close()
        return document

    return asyncio.run(fetch())
