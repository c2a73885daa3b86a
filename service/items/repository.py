"""Item queries. Every one takes the owner and puts it in the WHERE clause.

A user can therefore never read, change or delete another user's item, and cannot learn that
it exists: to them it is simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from sqlalchemy import CursorResult, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.items.pagination import Cursor
from service.models import Item


async def insert_item(
    session: AsyncSession, owner_id: uuid.UUID, name: str, description: str | None
) -> Item:
    now = datetime.now(UTC)
    item = Item(
        id=uuid.uuid4(),
        owner_id=owner_id,
        name=name,
        description=description,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(item)
    await session.flush()
    return item


async def select_item(session: AsyncSession, owner_id: uuid.UUID, item_id: uuid.UUID) -> Item | None:
    found = await session.execute(select(Item).where(Item.id == item_id, Item.owner_id == owner_id))
    return found.scalar_one_or_none()


async def select_items_page(
    session: AsyncSession, owner_id: uuid.UUID, limit: int, after: Cursor | None
) -> tuple[list[Item], Cursor | None]:
    """Up to ``limit`` items older than ``after``, newest first, and the cursor past them."""
    query = select(Item).where(Item.owner_id == owner_id)
    if after is not None:
        query = query.where(
            or_(
                Item.created_at < after.created_at,
                and_(Item.created_at == after.created_at, Item.id < after.id),
            )
        )
    query = query.order_by(Item.created_at.desc(), Item.id.desc()).limit(limit + 1)
    items = list((await session.execute(query)).scalars())
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    return items[:limit], Cursor(last.created_at, last.id)


async def update_item(
    session: AsyncSession,
    owner_id: uuid.UUID,
    item_id: uuid.UUID,
    changes: Mapping[str, str | None],
    *,
    if_version: Collection[int] | None = None,
) -> Item | None:
    """Apply ``changes`` and bump the version, only if the item's version is in ``if_version``.

    The version check is part of the ``UPDATE``'s WHERE clause, so two clients holding the same
    ``ETag`` cannot both win (no lost update). None when nothing matched.
    """
    query = update(Item).where(Item.id == item_id, Item.owner_id == owner_id)
    if if_version is not None:
        query = query.where(Item.version.in_(list(if_version)))
    query = query.values(**changes, version=Item.version + 1, updated_at=datetime.now(UTC))
    found = await session.execute(
        query.returning(Item), execution_options={"synchronize_session": False}
    )
    return found.scalar_one_or_none()


async def delete_item(session: AsyncSession, owner_id: uuid.UUID, item_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(Item).where(Item.id == item_id, Item.owner_id == owner_id),
        execution_options={"synchronize_session": False},
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
