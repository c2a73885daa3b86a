"""The admin blueprint: list, search, read, disable, enable, re-role and delete accounts, and
list and end their sessions. Only active admins get past ``service.admin.guard``."""

from __future__ import annotations

import uuid

from quart import Blueprint
from quart_schema import (
    security_scheme_blueprint,
    tag_blueprint,
    validate_querystring,
    validate_request,
    validate_response,
)

from service.accounts.queries import select_user
from service.admin import actions, queries
from service.admin.guard import current_admin
from service.admin.schemas import (
    AdminSessionList,
    AdminSessionOut,
    AdminUserOut,
    AdminUserPage,
    AdminUserPatch,
    UserListQuery,
)
from service.errors import NotFound
from service.items.pagination import Cursor
from service.services import services
from service.sessions.bearer import BEARER_SECURITY
from service.web.openapi import no_content, problems

bp = Blueprint("admin", __name__, url_prefix="/admin")
tag_blueprint(bp, ["admin"])
security_scheme_blueprint(bp, BEARER_SECURITY)


@bp.get("/users")
@validate_querystring(UserListQuery)
@validate_response(AdminUserPage)
@problems(401, 403, 422)
async def list_users(query_args: UserListQuery) -> AdminUserPage:
    """List accounts, newest first, a page at a time.

    `q` keeps those whose username or email address starts with it, in any letter case.
    Follow `next_cursor` until it is null. Needs the access token of an active admin: anyone
    else gets `403`.
    """
    after = Cursor.decode(query_args.cursor) if query_args.cursor else None
    async with services().db.read() as db:
        found, next_page = await queries.select_users_page(
            db, query_args.q, query_args.limit, after
        )
    return AdminUserPage(
        users=[AdminUserOut.model_validate(user) for user in found],
        next_cursor=next_page.encode() if next_page else None,
    )


@bp.get("/users/<id:user_id>")
@validate_response(AdminUserOut)
@problems(401, 403, 404)
async def read_user(user_id: uuid.UUID) -> AdminUserOut:
    """One account."""
    async with services().db.read() as db:
        user = await select_user(db, user_id)
    if user is None:
        raise NotFound(actions.NOT_FOUND)
    return AdminUserOut.model_validate(user)


@bp.patch("/users/<id:user_id>")
@validate_request(AdminUserPatch)
@validate_response(AdminUserOut)
@problems(401, 403, 404, 409, 422)
async def update_user(user_id: uuid.UUID, data: AdminUserPatch) -> AdminUserOut:
    """Disable or enable an account, or change its role.

    `is_active: false` disables the account: all its sessions end at once (its access tokens
    stop working at the next request) and `/login` refuses it as it refuses a wrong password.
    `is_active: true` enables it again. A new `role` applies at the account's next request.
    Disabling or demoting your own account is `409`.
    """
    user = await actions.change_user(
        services(), current_admin(), user_id, is_active=data.is_active, role=data.role
    )
    return AdminUserOut.model_validate(user)


@bp.delete("/users/<id:user_id>")
@no_content
@problems(401, 403, 404, 409)
async def delete_user(user_id: uuid.UUID) -> tuple[str, int]:
    """Delete an account with its items and sessions; its username becomes free.

    Deleting your own account here is `409` (`DELETE /me` does that).
    """
    await actions.delete_user(services(), current_admin(), user_id)
    return "", 204


@bp.get("/users/<id:user_id>/sessions")
@validate_response(AdminSessionList)
@problems(401, 403, 404)
async def list_user_sessions(user_id: uuid.UUID) -> AdminSessionList:
    """The account's live sessions (logins), newest first."""
    found = await actions.live_sessions(services(), user_id)
    return AdminSessionList(sessions=[AdminSessionOut.model_validate(s) for s in found])


@bp.delete("/users/<id:user_id>/sessions")
@no_content
@problems(401, 403, 404, 409)
async def end_user_sessions(user_id: uuid.UUID) -> tuple[str, int]:
    """End every session of the account: logged out everywhere, its tokens stop at once.

    The account can log in again. For your own account this is `409` (`POST /logout` with
    `scope=global` does that).
    """
    await actions.end_sessions(services(), current_admin(), user_id)
    return "", 204
