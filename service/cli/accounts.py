"""The account commands of an operator: ``create-user``, ``set-role`` and ``mfa-off``."""

# ruff: noqa: PLC0415 (the imports inside the commands are this module's design)

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from service.cli.common import checked_settings, command_services

if TYPE_CHECKING:
    import uuid

    from service.accounts.queries import UserRecord
    from service.accounts.schemas import SignupRequest
    from service.config import Settings


@click.command("create-user")
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

    user = asyncio.run(_register(checked_settings(), signup, admin=admin))
    role = " with the admin role" if admin else ""
    click.echo(f"created user {user.username} ({user.id}){role}")


async def _register(settings: Settings, signup: SignupRequest, *, admin: bool) -> UserRecord:
    from service.accounts.flows import register
    from service.security.events import security_event
    from service.security.roles import Role

    role = Role.ADMIN if admin else Role.USER
    async with command_services(settings) as services:
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


@click.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(["admin", "user"]))
def set_role_command(username: str, role: str) -> None:
    """Give the account USERNAME (any letter case) the role admin or user, at once.

    A demoted admin loses the admin API at their next request, even with a token issued
    before. Logged as an admin_action security event naming the operating system user.
    """
    import asyncio

    user = asyncio.run(_set_role(checked_settings(), username, role))
    click.echo(f"{user.username} ({user.id}) is now {user.role}")


async def _set_role(settings: Settings, username: str, role: str) -> UserRecord:
    from service.admin import actions
    from service.security.roles import Role

    async with command_services(settings) as services:
        return await actions.set_role_by_username(
            services, actions.Actor.command_line(), username, Role(role)
        )


@click.command("mfa-off")
@click.argument("username")
def mfa_off_command(username: str) -> None:
    """Turn off USERNAME's second factor, without a code: for an owner who lost both the
    authenticator app and the recovery codes.

    Check who is asking first, out of band: this is account recovery. Every session of the
    account ends, and the security log records it (`mfa_disabled`, `how=operator`).
    """
    import asyncio

    user_id = asyncio.run(_mfa_off(checked_settings(), username))
    click.echo(f"second factor of {username} ({user_id}) turned off; its sessions ended")


async def _mfa_off(settings: Settings, username: str) -> uuid.UUID:
    from service.mfa.flows import reset as reset_second_factor

    async with command_services(settings) as services:  # no such user or no factor: status 1
        return await reset_second_factor(services, username)
