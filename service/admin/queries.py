"""Account queries of the admin API: search and page through users, change and delete one.

Admins act on any account, so these take the target user's id instead of an owner; the guard
(``service.admin.guard``) has checked that the caller may. Users come back as ``UserRecord``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, or_, select, update

from service.accounts.queries import UserRecord
from service.db import Reader, Writer, record, records
from service.db.models import User
from service.items.pagination import Cursor
from service.security.roles import Role

#: The columns whose start a search ``q`` matches (case-folded, as usernames are compared).
#: A new searchable prefix is one more column here.
SEARCH_PREFIX_COLUMNS: tuple[Any, ...] = (User.username_key, User.email_key)

#: Asked on every admin request, so built once.
_SELECT_RIGHTS = select(User.username, User.role, User.is_active).where(
    User.id == bindparam("user_id")
)


async def select_rights(db: Reader, user_id: uuid.UUID) -> tuple[str, str, bool] | None:
    """``(username, role, is_active)`` of the account as stored now, or None if it is gone."""
    row = await db.first(_SELECT_RIGHTS, {"user_id": user_id})
    return None if row is None else (row["username"], row["role"], row["is_active"])


def like_prefix(text: str) -> str:
    """A ``LIKE`` pattern (escape character ``\\``) matching strings that start with ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def search_condition(q: str) -> ColumnElement[bool]:
    """Accounts where one of ``SEARCH_PREFIX_COLUMNS`` starts with ``q``, in any letter case."""
    pattern = like_prefix(q.casefold())
    return or_(*(column.like(pattern, escape="\\") for column in SEARCH_PREFIX_COLUMNS))


async def select_users_page(
    db: Reader, q: str | None, limit: int, after: Cursor | None
) -> tuple[list[UserRecord], Cursor | None]:
    """Up to ``limit`` accounts matching ``q`` (all without), newest first, from after ``after``,
    and the cursor past them (keyset paging, as for items)."""
    query = select(User)
    if q:
        query = query.where(search_condition(q))
    if after is not None:
        query = query.where(
            or_(
                User.created_at < after.created_at,
                and_(User.created_at == after.created_at, User.id < after.id),
            )
        )
    query = query.order_by(User.created_at.desc(), User.id.desc()).limit(limit + 1)
    users = records(UserRecord, await db.all(query))
    if len(users) <= limit:
        return users, None
    last = users[limit - 1]
    return users[:limit], Cursor(last.created_at, last.id)


async def lock_accounts(
    db: Writer, user_ids: Collection[uuid.UUID], *, active_admins: bool
) -> dict[uuid.UUID, UserRecord]:
    """The accounts ``user_ids``, and with ``active_admins`` every active admin, as committed
    now, their rows locked until the transaction ends; by id (a missing account is absent).

    Every caller locks in the order of the ids, so two changes that need some of the same
    rows take turns instead of deadlocking. On PostgreSQL (``READ COMMITTED``) a row that
    another transaction holds is read again once that one commits, and an admin it demoted
    or disabled no longer matches; SQLite has one writer at a time.
    """
    condition: ColumnElement[bool] = User.id.in_(user_ids)
    if active_admins:
        condition = or_(condition, and_(User.role == Role.ADMIN.value, User.is_active.is_(True)))
    query = select(User).where(condition).order_by(User.id).with_for_update()
    return {user.id: user for user in records(UserRecord, await db.all(query))}


async def update_user(
    db: Writer, user_id: uuid.UUID, changes: dict[str, object]
) -> UserRecord | None:
    """Set ``changes`` (``role``, ``is_active``) on the account; the account after, or None."""
    row = await db.first(update(User).where(User.id == user_id).values(changes).returning(User))
    return record(UserRecord, row)
