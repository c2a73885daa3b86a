"""The ``service`` command: run the development server and apply migrations."""

from __future__ import annotations

import click
from hypercorn.config import Config
from hypercorn.run import run

from service import migrate
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
