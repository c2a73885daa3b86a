"""The ``service`` command: run the development server, apply migrations, make signing keys."""

from __future__ import annotations

import os
from pathlib import Path

import click
from hypercorn.config import Config
from hypercorn.run import run

from service import migrate
from service.security import keys
from service.settings import load_settings_or_exit

HYPERCORN_CONFIG = "config/hypercorn.toml"
APPLICATION = "service:create_app()"


@click.group()
def main() -> None:
    """Manage the service."""


@main.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def migrate_command(revision: str) -> None:
    """Apply the database migrations to DATABASE_URL."""
    settings = load_settings_or_exit()
    migrate.upgrade(settings, revision)
    click.echo(f"database at revision {revision}")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Defaults to PORT (8000).")
@click.option("--workers", type=int, default=1, show_default=True)
def serve_command(host: str, port: int | None, workers: int) -> None:
    """Apply migrations, then serve with Hypercorn (config/hypercorn.toml)."""
    settings = load_settings_or_exit()
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

    Also the first step of a key rotation (README, "Keys and rotation"). An existing file is
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
