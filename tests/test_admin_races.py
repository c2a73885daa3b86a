"""Admins acting on each other at the same moment: at least one active admin always remains.

Each race sends two changes together (``asyncio.gather``), round after round, on SQLite (one
writer at a time) and on PostgreSQL (``READ COMMITTED``, where only the row locks of the
acting transaction order them). The admin who acts second is no longer an admin when their
change is decided: 403, and nothing of it is written. The command line's ``set-role`` races
too: it refuses to demote the last active admin.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from service.admin import actions
from service.db.models import User
from service.errors import ApiError
from service.security.roles import Role
from service.services import services
from tests.helpers import Account, sign_up
from tests.session_helpers import bearer

ROUNDS = 6
OPERATOR = actions.Actor(name="test-operator")
#: Each way of taking an admin's power away, as a request to the target: method, body.
REMOVALS = {
    "demote": ("PATCH", {"role": "user"}),
    "disable": ("PATCH", {"is_active": False}),
    "delete": ("DELETE", None),
}


async def admin_pair(app: Quart, client: Client, round_: int) -> tuple[Account, Account]:
    """Two new admins, logged in; every other account of earlier rounds is left as it is."""
    pair = []
    for name in ("ann", "ben"):
        account = await sign_up(client, f"{name}{round_}")
        await actions.change_user(services(app), OPERATOR, uuid.UUID(account.id), role=Role.ADMIN)
        pair.append(account)
    return pair[0], pair[1]


async def active_admins(app: Quart) -> int:
    query = select(func.count()).where(User.role == Role.ADMIN.value, User.is_active.is_(True))
    async with services(app).db.read() as db:
        count: int = await db.scalar(query)
    return count


async def remove(client: Client, how: str, actor: Account, target: Account) -> Any:
    method, body = REMOVALS[how]
    return await client.open(
        f"/admin/users/{target.id}", method=method, headers=bearer(actor.access_token), json=body
    )


async def demote_from_the_command_line(app: Quart, username: str) -> str:
    """What ``service set-role USERNAME user`` does; ``done`` or the refusal's status."""
    try:
        await actions.set_role_by_username(
            services(app), actions.Actor.command_line(), username, Role.USER
        )
    except ApiError as error:
        return str(error.status)
    return "done"


async def assert_refused_as_no_longer_admin(response: Any) -> None:
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert "active admin" in (await response.get_json())["detail"]


@pytest.mark.parametrize("second", REMOVALS)
@pytest.mark.parametrize("first", REMOVALS)
async def test_two_admins_removing_each_other_leave_one_admin(
    app: Quart,
    client: Client,
    first: str,
    second: str,
    security_events: list[logging.LogRecord],
) -> None:
    for round_ in range(ROUNDS):
        ann, ben = await admin_pair(app, client, round_)
        before = await active_admins(app)

        by_ann, by_ben = await asyncio.gather(
            remove(client, first, ann, ben), remove(client, second, ben, ann)
        )

        statuses = sorted([by_ann.status_code, by_ben.status_code])
        assert statuses[0] in {200, 204}, (round_, statuses)
        loser = by_ann if by_ann.status_code == 403 else by_ben
        await assert_refused_as_no_longer_admin(loser)
        assert await active_admins(app) == before - 1, round_
        # The winner still administers; the loser does not.
        winner, refused = (ann, ben) if loser is by_ben else (ben, ann)
        assert (
            await client.get("/admin/users", headers=bearer(winner.access_token))
        ).status_code == 200
        denied = [
            vars(r) for r in security_events if getattr(r, "event", "") == "admin_access_denied"
        ]
        assert denied[-1]["user_id"] == refused.id
        assert (
            await client.get("/admin/users", headers=bearer(refused.access_token))
        ).status_code in {401, 403}
    # Most rounds were decided in the transaction (the guard had let both through); in a
    # round where one request came late enough, the guard itself refused it.
    reasons = [getattr(r, "reason", None) for r in security_events]
    assert "no_longer_admin" in reasons


async def test_the_command_line_and_the_api_never_demote_the_last_two_admins_both(
    app: Quart, client: Client
) -> None:
    """``set-role ann user`` while ann demotes ben: one of them is refused."""
    for round_ in range(ROUNDS):
        ann, ben = await admin_pair(app, client, round_)
        await disable_every_other_admin(app, ann, ben)

        by_api, by_cli = await asyncio.gather(
            remove(client, "demote", ann, ben), demote_from_the_command_line(app, ann.username)
        )

        if by_api.status_code == 200:
            assert by_cli == "409", round_  # ann is now the last active admin
        else:
            await assert_refused_as_no_longer_admin(by_api)
            assert by_cli == "done"
        assert await active_admins(app) == 1, round_


async def test_two_operators_never_demote_the_last_two_admins_both(
    app: Quart, client: Client
) -> None:
    """Two ``set-role ... user`` at once, each for one of the two remaining admins."""
    for round_ in range(ROUNDS):
        ann, ben = await admin_pair(app, client, round_)
        await disable_every_other_admin(app, ann, ben)

        outcomes = await asyncio.gather(
            demote_from_the_command_line(app, ann.username),
            demote_from_the_command_line(app, ben.username),
        )

        assert sorted(outcomes) == ["409", "done"], round_
        assert await active_admins(app) == 1, round_


async def disable_every_other_admin(app: Quart, *keep: Account) -> None:
    """Leave ``keep`` the only active admins (earlier rounds left their winners)."""
    kept = {uuid.UUID(account.id) for account in keep}
    async with services(app).db.read() as db:
        ids = await db.all(select(User.id).where(User.role == Role.ADMIN.value))
    for row in ids:
        if row["id"] not in kept:
            await actions.change_user(services(app), OPERATOR, row["id"], is_active=False)
