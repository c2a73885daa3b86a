"""What admins do to accounts, from the admin API and the command line alike.

Each action is one transaction and one ``admin_action`` security event naming the acting
admin (``actor``: the admin's username and ``actor_id``, or ``cli:<operating system user>``
for the command line), the target account and what changed (OWASP ASVS 5.0 V16.3: log
authorization decisions and changes to accounts). Sessions ended on the way are logged as
``session_revoked`` with ``how=admin``.

- **Disable** (``is_active`` false) revokes every session of the account in the same
  transaction: its access tokens stop at the next request, its refresh tokens are dead, and
  ``/login`` answers as for a wrong password. **Enable** lets it log in again; the sessions
  ended stay ended.
- **Role** changes take effect at once: the admin API asks the database on every request.
- **Delete** removes the account with its items and sessions.
- An admin cannot disable, demote or delete their own account, nor end all their own
  sessions, through the API (``service.security.roles``): 409.

Each change is decided inside its transaction (``_decide``): the guard read the caller's
rights before it began, and another admin may have demoted, disabled or deleted them since, so
the acting admin's row is locked and read again, and a caller who is no longer an active admin
gets the guard's 403 and changes nothing. A change that takes power away also locks every
active admin and never removes the last one (409; only the command line can get that far).
"""

from __future__ import annotations

import getpass
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.accounts import queries as account_queries
from service.accounts.queries import UserRecord, select_user, select_user_by_username
from service.admin import queries
from service.db import Writer
from service.errors import Conflict, Forbidden, NotFound
from service.security.events import security_event
from service.security.roles import (
    Role,
    SelfAction,
    check_not_self,
    is_last_admin,
    locks_out,
    may_administer,
)
from service.services import Services
from service.sessions.logout import log_revoked
from service.sessions.queries import revoke_sessions, select_live_sessions
from service.sessions.rules import SessionRecord

NOT_FOUND = "No such user."
NOT_AN_ADMIN = "This needs the access token of an active admin."


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an admin of the API (``id`` set) or an operator at the command line."""

    name: str
    id: uuid.UUID | None = None

    @classmethod
    def command_line(cls) -> Actor:
        """The operator running ``service``, by their operating system login."""
        try:
            login = getpass.getuser()
        except (OSError, KeyError):  # no login name in a bare container
            login = "unknown"
        return cls(name=f"cli:{login}")


def _event(actor: Actor, action: str, target: uuid.UUID, **fields: Any) -> None:
    security_event(
        "admin_action",
        action=action,
        actor=actor.name,
        actor_id=actor.id,
        target_user_id=target,
        **fields,
    )


def _refuse_self(actor: Actor, target: uuid.UUID, what: str) -> None:
    if actor.id is None:
        return
    try:
        check_not_self(actor.id, target, what=what)
    except SelfAction as error:
        raise Conflict(str(error)) from None


async def _decide(db: Writer, actor: Actor, target: uuid.UUID, *, takes_power: bool) -> UserRecord:
    """The target as committed now, once the change may go ahead; in the change's transaction.

    Locks the rows the decision rests on, in id order (``queries.lock_accounts``): the
    target's and the acting admin's, and for a change that ``takes_power`` (disable, demote,
    delete) every active admin's. ``Forbidden`` if the acting admin is no longer an active
    admin, ``NotFound`` for no such account, ``Conflict`` if it would leave no active admin.
    """
    involved = {target} if actor.id is None else {target, actor.id}
    accounts = await queries.lock_accounts(db, involved, active_admins=takes_power)
    if actor.id is not None:
        acting = accounts.get(actor.id)
        if acting is None or not may_administer(acting.role, acting.is_active):
            security_event(
                "admin_access_denied",
                level=logging.WARNING,
                user_id=actor.id,
                reason="no_longer_admin",
            )
            raise Forbidden(NOT_AN_ADMIN)
    before = accounts.get(target)
    if before is None:
        raise NotFound(NOT_FOUND)
    if takes_power and is_last_admin(
        target, ((user.id, user.role, user.is_active) for user in accounts.values())
    ):
        raise Conflict(
            f"{before.username} is the last active admin: make another account an admin first"
        )
    return before


async def change_user(
    services: Services,
    actor: Actor,
    target: uuid.UUID,
    *,
    is_active: bool | None = None,
    role: Role | None = None,
) -> UserRecord:
    """Set ``is_active`` and/or ``role`` (None: leave as is); the account after the change.

    ``NotFound`` for no such account; ``Conflict`` when an admin would disable or demote
    themselves, or the last active admin would go; ``Forbidden`` when the acting admin is no
    longer one (``_decide``). Disabling revokes every session of the account in the same
    transaction.
    """
    takes_power = locks_out(is_active=is_active, role=role)
    if takes_power:
        _refuse_self(actor, target, "disable or demote")
    now = datetime.now(UTC)
    async with services.db.write() as db:
        before = await _decide(db, actor, target, takes_power=takes_power)
        changes: dict[str, object] = {}
        if is_active is not None and is_active != before.is_active:
            changes["is_active"] = is_active
        if role is not None and role != before.role:
            changes["role"] = role.value
        if not changes:
            return before
        after = await queries.update_user(db, target, changes)
        assert after is not None  # the row is locked
        revoked = await revoke_sessions(db, target, now) if is_active is False else []
    if "is_active" in changes:
        _event(actor, "enable" if is_active else "disable", target, sessions_ended=len(revoked))
    if "role" in changes:
        _event(actor, "set_role", target, role=after.role, previous_role=before.role)
    log_revoked(target, revoked, how="admin")
    return after


async def set_role_by_username(
    services: Services, actor: Actor, username: str, role: Role
) -> UserRecord:
    """``change_user`` with the role, for an account named by its username (any letter case)."""
    async with services.db.read() as db:
        user = await select_user_by_username(db, username)
    if user is None:
        raise NotFound(NOT_FOUND)
    return await change_user(services, actor, user.id, role=role)


async def delete_user(services: Services, actor: Actor, target: uuid.UUID) -> None:
    """Delete the account with its items and sessions; ``Conflict`` for the admin's own or the
    last active admin."""
    _refuse_self(actor, target, "delete")
    async with services.db.write() as db:
        await _decide(db, actor, target, takes_power=True)
        live = [session.id for session in await select_live_sessions(db, target)]
        await account_queries.delete_user(db, target)
    _event(actor, "delete", target)
    log_revoked(target, live, how="admin")


async def end_sessions(services: Services, actor: Actor, target: uuid.UUID) -> None:
    """Revoke every live session of the account: log it out everywhere, at once."""
    _refuse_self(actor, target, "end all sessions of")
    async with services.db.write() as db:
        await _decide(db, actor, target, takes_power=False)
        revoked = await revoke_sessions(db, target, datetime.now(UTC))
    _event(actor, "end_sessions", target, sessions_ended=len(revoked))
    log_revoked(target, revoked, how="admin")


async def live_sessions(services: Services, target: uuid.UUID) -> list[SessionRecord]:
    """The account's live sessions, newest first; ``NotFound`` for no such account."""
    async with services.db.read() as db:
        if await select_user(db, target) is None:
            raise NotFound(NOT_FOUND)
        return await select_live_sessions(db, target)
