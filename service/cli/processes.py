"""The commands of the Procfile's processes: ``migrate`` (release), ``serve`` (web) and
``send-mail`` (worker)."""

# ruff: noqa: PLC0415 (the imports inside the commands are this module's design)

from __future__ import annotations

from pathlib import Path

import click

from service.cli.common import checked_settings, failure


@click.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def migrate_command(revision: str) -> None:
    """Apply the database migrations to DATABASE_URL (the Procfile's release phase).

    Checks every setting the web process will read first, token keys included, so that a
    deploy with a bad setting fails here rather than in every web worker.
    """
    from service.db import migrate

    settings = checked_settings()
    try:
        migrate.upgrade(settings, revision)
    except migrate.DatabaseNotReady as error:
        raise failure(error) from None
    click.echo(f"database at revision {revision}")


@click.command("serve")
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
    starts (service/cli/serving.py); a problem ends the command with one line and status 1.
    """
    from service.cli import serving
    from service.db.ready import DatabaseNotReady, check_ready, database_location

    settings = checked_settings()
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
        raise failure(error) from None
    click.echo(f"database: {database_location(settings.database_url)}")
    click.echo(f"serving on http://{host}:{port} (docs at /docs)")
    status = serving.run_hypercorn(config)
    if status != 0:
        raise failure(
            "the server stopped: its workers exited without being asked to (their messages "
            "are above)"
        )


@click.command("send-mail")
def send_mail_command() -> None:
    """Deliver queued email until SIGTERM or Ctrl-C: the Procfile's worker: process.

    Checks the settings and that the database is at the head revision first. Run it with
    MAIL_SEND_IN_WEB=false on the web process, or beside web senders: any number of senders
    share one outbox and never send a message twice on purpose (docs/mail.md).
    """
    import asyncio

    from service.config.smtp_url import parse_smtp_url
    from service.db.ready import DatabaseNotReady, check_ready, database_location
    from service.logs import configure_logging
    from service.mail.process import send_until_stopped

    settings = checked_settings()
    if not settings.email_enabled:
        raise failure(
            "EMAIL_ENABLED is off, so there is no mail to send: set SMTP_URL (or "
            "EMAIL_ENABLED=true outside production), or do not run this process"
        )
    try:
        check_ready(settings.database_url)
    except DatabaseNotReady as error:
        raise failure(error) from None
    configure_logging(settings)
    if settings.smtp_url is None:
        via = "the log (SMTP_URL is not set)"
    else:
        server = parse_smtp_url(settings.smtp_url.get_secret_value())
        via = f"{server.host}:{server.port} ({server.security})"
    click.echo(f"sending mail from {database_location(settings.database_url)} via {via}")
    asyncio.run(send_until_stopped(settings))
