"""The auth blueprint: signup, login, refresh and the caller's own account."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from quart import Blueprint, request
from quart_schema import (
    DataSource,
    document_request,
    tag_blueprint,
    validate_request,
    validate_response,
)
from werkzeug.datastructures import Headers

from service.auth import sessions, users
from service.auth.bearer import current_principal, login_required
from service.auth.schemas import PasswordGrant, RefreshRequest, SignupRequest, TokenPair, UserOut
from service.errors import InvalidRequest, NotFound, UnsupportedGrantType, validation_errors
from service.extensions import services
from service.http import NO_STORE, client_address, headers, read_form_or_json

bp = Blueprint("auth", __name__)
tag_blueprint(bp, ["auth"])


@bp.post("/signup")
@validate_request(SignupRequest)
@validate_response(UserOut, 201)
async def signup(data: SignupRequest) -> tuple[UserOut, int, Headers]:
    """Create an account.

    Usernames are unique ignoring letter case. The password is stored as a bcrypt-SHA256 hash.
    """
    user = await users.register(services(), data.username, data.password)
    return UserOut.model_validate(user), 201, headers(Location="/me")


@bp.post("/login")
@document_request(PasswordGrant, source=DataSource.FORM)
@validate_response(TokenPair)
async def login() -> tuple[TokenPair, int, Headers]:
    """Log in with a username and password; get an access and a refresh token.

    The OAuth 2.0 password grant (RFC 6749 section 4.3): form fields as
    `application/x-www-form-urlencoded` or `multipart/form-data`, or a JSON object. Every
    login starts a new session. Failures are `400` with `error: invalid_grant`, the same for an
    unknown user and a wrong password.
    """
    body = await read_form_or_json()
    _require_password_grant(body)
    grant = _parse(PasswordGrant, body)
    user = await users.check_password(services(), grant.username, grant.password)
    client = sessions.ClientInfo(
        user_agent=request.headers.get("User-Agent"), address=client_address()
    )
    return await sessions.start_session(services(), user.id, client), 200, NO_STORE


@bp.post("/refresh")
@document_request(RefreshRequest)
@validate_response(TokenPair)
async def refresh() -> tuple[TokenPair, int, Headers]:
    """Spend a refresh token for a new pair.

    The presented refresh token is spent. Presenting a spent one again revokes its whole
    session (RFC 9700 section 4.14): the tokens issued after it stop working too.
    """
    body = _parse(RefreshRequest, await read_form_or_json())
    return await sessions.rotate(services(), body.refresh_token), 200, NO_STORE


@bp.get("/me")
@login_required
@validate_response(UserOut)
async def me() -> UserOut:
    """The account of the caller."""
    async with services().db.read() as db:
        user = await users.select_user(db, current_principal().user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    return UserOut.model_validate(user)


M = TypeVar("M", PasswordGrant, RefreshRequest)


def _require_password_grant(body: object) -> None:
    """Another ``grant_type`` is ``unsupported_grant_type`` (RFC 6749 section 5.2)."""
    grant_type = body.get("grant_type") if isinstance(body, dict) else None
    if grant_type is not None and grant_type != "password":
        raise UnsupportedGrantType("Only grant_type=password is supported at this endpoint.")


def _parse(model: type[M], data: object) -> M:
    """Token-endpoint bodies fail as RFC 6749 section 5.2 says: 400 ``invalid_request``."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(
            "The request is missing a field or has a malformed one.",
            errors=validation_errors(error),
        ) from None
