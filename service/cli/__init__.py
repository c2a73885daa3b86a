"""The ``service`` command: serve, migrate, send mail, create users and set their roles, purge
old rows, export the OpenAPI document, make keys.

Only ``click`` is imported up front: ``service --help`` and ``service keygen`` must not pay for
Quart, SQLAlchemy and Alembic (most of the start-up time is imports, docs/startup.md). Each
command imports what it uses when it runs.

The commands live by group: ``processes`` (the Procfile's migrate, serve and send-mail),
``accounts``, ``keygen``, ``housekeeping`` (purge) and ``openapi``; ``common`` holds what they
share, ``serving`` and ``purge`` the work behind ``serve`` and ``purge``.
"""

from __future__ import annotations

import click

from service.cli.accounts import create_user_command, mfa_off_command, set_role_command
from service.cli.housekeeping import purge_command
from service.cli.keygen import keygen_command
from service.cli.openapi import openapi_command
from service.cli.processes import migrate_command, send_mail_command, serve_command


@click.group()
def main() -> None:
    """Manage the service."""


for command in (
    migrate_command,
    serve_command,
    send_mail_command,
    keygen_command,
    create_user_command,
    set_role_command,
    mfa_off_command,
    purge_command,
    openapi_command,
):
    main.add_command(command)
