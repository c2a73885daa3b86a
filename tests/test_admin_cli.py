"""The admin commands as an operator uses them: ``create-user --admin`` and ``set-role``.

The commands run against the database the test's app serves, while it serves, so each result
is checked over HTTP: a demoted admin's still-valid token loses the admin API at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from click.testing import Result
from quart.typing import TestClientProtocol as Client

from tests.helpers import log_in, sign_up
from tests.test_cli import PASSWORD, Invoke, service_command  # noqa: F401 (a fixture)

#: ``await run(*args, input=...)``: a ``service`` command's result.
Run = Callable[..., Awaitable[Result]]


@pytest.fixture
def run(service_command: Invoke, database_url: str) -> Run:  # noqa: F811
    """``await run(*args, input=...)``: the command on the app's database, off the event loop
    (it runs its own)."""

    async def invoke(*args: str, input: str | None = None) -> Result:
        return await asyncio.to_thread(
            service_command, *args, input=input, DATABASE_URL=database_url
        )

    return invoke


async def admin_status(client: Client, access_token: str) -> int:
    response = await client.get("/admin/users", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


async def test_create_user_admin_makes_an_account_that_can_use_the_admin_api(
    client: Client, run: Run
) -> None:
    result = await run("create-user", "root", "--admin", "--password-stdin", input=PASSWORD)

    assert result.exit_code == 0, result.output
    assert "with the admin role" in result.output
    tokens = await log_in(client, "root", PASSWORD)
    assert await admin_status(client, tokens["access_token"]) == 200


async def test_create_user_without_the_flag_makes_an_ordinary_user(
    client: Client, run: Run
) -> None:
    result = await run("create-user", "carol", "--password-stdin", input=PASSWORD)

    assert result.exit_code == 0, result.output
    tokens = await log_in(client, "carol", PASSWORD)
    assert await admin_status(client, tokens["access_token"]) == 403


async def test_set_role_user_takes_the_admin_api_from_a_still_valid_token_at_once(
    client: Client, run: Run
) -> None:
    await run("create-user", "root", "--admin", "--password-stdin", input=PASSWORD)
    account = await sign_up(client, "dora")
    promoted = await run("set-role", "DORA", "admin")
    assert promoted.exit_code == 0, promoted.output
    assert "dora" in promoted.output
    assert await admin_status(client, account.access_token) == 200

    demoted = await run("set-role", "dora", "user")

    assert demoted.exit_code == 0, demoted.output
    assert "is now user" in demoted.output
    assert await admin_status(client, account.access_token) == 403
    me = await client.get("/me", headers=account.headers)
    assert me.status_code == 200  # the account itself is untouched


async def test_set_role_refuses_to_demote_the_last_active_admin(client: Client, run: Run) -> None:
    await run("create-user", "root", "--admin", "--password-stdin", input=PASSWORD)
    tokens = await log_in(client, "root", PASSWORD)

    refused = await run("set-role", "root", "user")

    assert refused.exit_code == 1
    assert refused.output == (
        "Error: root is the last active admin: make another account an admin first\n"
    )
    assert await admin_status(client, tokens["access_token"]) == 200
    await run("create-user", "ops", "--admin", "--password-stdin", input=PASSWORD)
    assert (await run("set-role", "root", "user")).exit_code == 0


async def test_set_role_refuses_an_unknown_user_and_an_unknown_role(
    client: Client, run: Run
) -> None:
    await sign_up(client, "erin")

    unknown_user = await run("set-role", "nobody", "admin")
    unknown_role = await run("set-role", "erin", "root")

    assert unknown_user.exit_code == 1
    assert "No such user." in unknown_user.output
    assert unknown_role.exit_code == 2
    assert "'root' is not one of" in unknown_role.output


async def test_the_commands_are_security_events_naming_the_operator(
    client: Client, run: Run, security_events: list[logging.LogRecord]
) -> None:
    logger = logging.getLogger("service")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        await run("create-user", "root", "--admin", "--password-stdin", input=PASSWORD)
        await run("create-user", "ops", "--admin", "--password-stdin", input=PASSWORD)
        await run("set-role", "root", "user")
    finally:
        logger.setLevel(level)

    found = [vars(r) for r in security_events if getattr(r, "event", "") == "admin_action"]
    assert [event["action"] for event in found] == ["create_admin", "create_admin", "set_role"]
    assert all(event["actor"].startswith("cli:") for event in found)
    assert found[2]["role"] == "user"
