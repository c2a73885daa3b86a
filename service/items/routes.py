"""The items blueprint: every route needs a bearer access token and sees only the caller's items."""

from __future__ import annotations

import uuid

from quart import Blueprint, Response, request
from quart_schema import (
    document_headers,
    security_scheme_blueprint,
    tag_blueprint,
    validate_querystring,
    validate_request,
    validate_response,
)
from werkzeug.datastructures import Headers

from service.db import Writer
from service.errors import NotFound, PreconditionFailed
from service.idempotency.guard import once, user_scope
from service.idempotency.schemas import IdempotencyHeader
from service.items import queries
from service.items.conditional import etag, if_match_versions, if_none_match
from service.items.pagination import Cursor
from service.items.queries import ItemRecord
from service.items.schemas import (
    ItemCreate,
    ItemListQuery,
    ItemOut,
    ItemPage,
    ItemPatch,
    ItemReplace,
    ReadConditions,
    WriteConditions,
)
from service.services import services
from service.sessions.bearer import BEARER_SECURITY, current_principal, require_bearer
from service.web.openapi import no_content, not_modified, problems, response_headers
from service.web.responses import headers

bp = Blueprint("items", __name__)
tag_blueprint(bp, ["items"])
security_scheme_blueprint(bp, BEARER_SECURITY)
bp.before_request(require_bearer)

NOT_FOUND = "No such item."


def _out(item: ItemRecord, status: int = 200, **extra: str) -> tuple[ItemOut, int, Headers]:
    return ItemOut.model_validate(item), status, headers(ETag=etag(item.version), **extra)


@bp.post("/items")
@bp.post("/items/")
@document_headers(IdempotencyHeader)
@validate_request(ItemCreate)
@validate_response(ItemOut, 201)
@response_headers(201, "ETag", "Location")
@problems(401, 409, 422)
async def create_item(data: ItemCreate) -> tuple[ItemOut, int, Headers]:
    """Create an item owned by the caller.

    Send an `Idempotency-Key` to retry safely: a retry with the same key and body gets the
    first answer again (`Idempotent-Replayed: true`) and creates nothing; the same key with
    another body is `422`.
    """
    owner_id = current_principal().user_id

    async def create(db: Writer) -> tuple[ItemOut, int, Headers]:
        item = await queries.insert_item(db, owner_id, data.name, data.description)
        return _out(item, 201, Location=f"/items/{item.id}")

    return await once(user_scope(owner_id), data.model_dump(mode="json"), create, owner_id=owner_id)


@bp.get("/items")
@bp.get("/items/")
@validate_querystring(ItemListQuery)
@validate_response(ItemPage)
@problems(401, 422)
async def list_items(query_args: ItemListQuery) -> ItemPage:
    """List the caller's items, newest first, a page at a time.

    Follow `next_cursor` until it is null. Items created while paging appear on page one of a
    new listing and never shift the pages being read.
    """
    after = Cursor.decode(query_args.cursor) if query_args.cursor else None
    async with services().db.read() as db:
        items, next_page = await queries.select_items_page(
            db, current_principal().user_id, query_args.limit, after
        )
    return ItemPage(
        items=[ItemOut.model_validate(item) for item in items],
        next_cursor=next_page.encode() if next_page else None,
    )


@bp.get("/items/<id:item_id>")
@document_headers(ReadConditions)
@validate_response(ItemOut)
@response_headers(200, "ETag")
@not_modified
@problems(401, 404)
async def read_item(item_id: uuid.UUID) -> tuple[ItemOut, int, Headers] | Response:
    """Read one of the caller's items.

    `If-None-Match` with its `ETag` gives `304` while the item is unchanged.
    """
    async with services().db.read() as db:
        item = await queries.select_item(db, current_principal().user_id, item_id)
    if item is None:
        raise NotFound(NOT_FOUND)
    if if_none_match(request.headers.get("If-None-Match"), item.version):
        return Response(status=304, headers={"ETag": etag(item.version)})
    return _out(item)


@bp.put("/items/<id:item_id>")
@document_headers(WriteConditions)
@validate_request(ItemReplace)
@validate_response(ItemOut)
@response_headers(200, "ETag")
@problems(401, 404, 412, 422)
async def replace_item(item_id: uuid.UUID, data: ItemReplace) -> tuple[ItemOut, int, Headers]:
    """Replace an item.

    Send `If-Match` with its `ETag` to refuse overwriting a newer version.
    """
    return _out(await _update(item_id, data.model_dump()))


@bp.patch("/items/<id:item_id>")
@document_headers(WriteConditions)
@validate_request(ItemPatch)
@validate_response(ItemOut)
@response_headers(200, "ETag")
@problems(401, 404, 412, 422)
async def update_item(item_id: uuid.UUID, data: ItemPatch) -> tuple[ItemOut, int, Headers]:
    """Change some fields of an item.

    `If-Match` as for `PUT`.
    """
    return _out(await _update(item_id, data.changes()))


@bp.delete("/items/<id:item_id>")
@no_content
@problems(401, 404)
async def delete_item(item_id: uuid.UUID) -> tuple[str, int]:
    """Delete an item."""
    async with services().db.write() as db:
        deleted = await queries.delete_item(db, current_principal().user_id, item_id)
    if not deleted:
        raise NotFound(NOT_FOUND)
    return "", 204


async def _update(item_id: uuid.UUID, changes: dict[str, str | None]) -> ItemRecord:
    """Update under the ``If-Match`` precondition; 404 if not the caller's, 412 if outdated."""
    owner_id = current_principal().user_id
    versions = if_match_versions(request.headers.get("If-Match"))
    async with services().db.write() as db:
        item = await queries.update_item(db, owner_id, item_id, changes, if_version=versions)
        exists = item is not None or await queries.select_item(db, owner_id, item_id) is not None
    if item is None:
        raise (
            PreconditionFailed("The item has changed since that ETag.")
            if exists
            else NotFound(NOT_FOUND)
        )
    return item
