"""Roles and the rules of administration, free of any framework.

An account is a ``user`` or an ``admin``. Only an active admin may administer, and the answer
comes from the database on every admin request, never from a token: the ``role`` claim of an
access token (RFC 9068 section 7.2.1.1 names ``roles`` for this; one role fits one claim) tells
other services what the account was when the token was issued, but a demoted or disabled admin
must lose power at once (OWASP ASVS 5.0 V8.2: authorization is enforced on the server, at the
time of each request).

An admin may not lock themselves out by accident: disabling, demoting or deleting their own
account, or ending all their own sessions, through the admin API is refused (``SelfAction``);
``/logout`` and ``DELETE /me`` are the ways to do that on purpose, and the command line
(``service set-role``) can still change any account but the last active admin.

Nor can concurrent changes leave nobody to administer: each change is decided inside its own
transaction on the rows as committed, the acting admin must still be an active admin there,
and the last active admin is never demoted, disabled or deleted (``is_last_admin``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable


class Role(enum.StrEnum):
    """What an account may do: ``admin`` adds the admin API to what every ``user`` may do."""

    USER = "user"
    ADMIN = "admin"


def may_administer(role: str, is_active: bool) -> bool:
    """Whether an account with this stored ``role`` and ``is_active`` may use the admin API."""
    return is_active and role == Role.ADMIN


class SelfAction(Exception):
    """An admin asked to disable, demote or delete themselves, or end all their sessions."""


def check_not_self(actor_id: uuid.UUID, target_id: uuid.UUID, *, what: str) -> None:
    """``SelfAction`` if the admin ``actor_id`` would do ``what`` to their own account."""
    if actor_id == target_id:
        raise SelfAction(f"An admin cannot {what} their own account here.")


def locks_out(*, is_active: bool | None, role: Role | None) -> bool:
    """Whether a change of ``is_active`` and ``role`` (None: unchanged) would take an admin's
    power away: disabling the account or demoting it."""
    return is_active is False or role is Role.USER


def is_last_admin(target_id: uuid.UUID, accounts: Iterable[tuple[uuid.UUID, str, bool]]) -> bool:
    """Whether ``target_id`` is the one account among ``accounts`` (``(id, role, is_active)``,
    every active admin among them) that may administer."""
    admins = {account_id for account_id, role, active in accounts if may_administer(role, active)}
    return admins == {target_id}
