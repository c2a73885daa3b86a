"""Item queries. Every one takes the owner and puts it in the WHERE clause.

A user can therefore never read, change or delete another user's item, and cannot learn that
it exists: to them it is simply not found. Items come back as ``ItemRecord`` values.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update

from service.db import Reader, Writer, record, records
from service.db.models import Item
from service.items.pagination import Cursor


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item as stored (a row of ``items``); ``version`` counts its updates."""

    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    description: str | None
    version: int
    created_at: datetime
    updated_at: datetime


#: The hottest query of the service: built once, since building a statement costs more than
#: the database takes to answer it.
_SELECT_OWNED_ITEM = select(Item).where(
    Item.id == bindparam("item_id"), Item.owner_id == bindparam("owner_id")
)


async def insert_item(
    db: Writer, owner_id: uuid.UUID, name: str, description: str | None
) -> ItemRecord:
    now = datetime.now(UTC)
    row = await db.first(
        insert(Item)
        .values(
            id=uuid.uuid4(),
            owner_id=owner_id,
            name=name,
            description=description,
            version=1,
            created_at=now,
            updated_at=now,
        )
        .returning(Item)
    )
    assert row is not None
    item = record(ItemRecord, row)
    assert item is not None
    return item


async def select_item(db: Reader, owner_id: uuid.UUID, item_id: uuid.UUID) -> ItemRecord | None:
    params = {"item_id": item_id, "owner_id": owner_id}
    return record(ItemRecord, await db.first(_SELECT_OWNED_ITEM, params))


async def select_items_page(
    db: Reader, owner_id: uuid.UUID, limit: int, after: Cursor | None
) -> tuple[list[ItemRecord], Cursor | None]:
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
    items = records(ItemRecord, await db.all(query))
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    return items[:limit], Cursor(last.created_at, last.id)


async def update_item(
    db: Writer,
    owner_id: uuid.UUID,
    item_id: uuid.UUID,
    changes: Mapping[str, str | None],
    *,
    if_version: Collection[int] | None = None,
) -> ItemRecord | None:
    """Apply ``changes`` and bump the version, only if the item's version is in ``if_version``.

    The version check is part of the ``UPDATE``'s WHERE clause, so two clients holding the same
    ``ETag`` cannot both win (no lost update). None when nothing matched.
    """
    query = update(Item).where(Item.id == item_id, Item.owner_id == owner_id)
    if if_version is not None:
        query = query.where(Item.version.in_(list(if_version)))
    query = query.values(**changes, version=Item.version + 1, updated_at=datetime.now(UTC))
    return record(ItemRecord, await db.first(query.returning(Item)))


async def delete_item(db: Writer, owner_id: uuid.UUID, item_id: uuid.UUID) -> bool:
    return await db.run(delete(Item).where(Item.id == item_id, Item.owner_id == owner_id)) == 1
