"""What the token endpoints share (``/refresh``, and ``/login`` with its refresh grant): the
``grant_type`` check and body parsing of RFC 6749 section 5.2, and the answer of a spent refresh
token, in the body or in cookie mode."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import Headers

from service.errors import InvalidRequest, UnsupportedGrantType, validation_errors
from service.services import services
from service.sessions import refresh_cookie
from service.sessions.rotation import rotate
from service.sessions.schemas import AccessTokens, TokenPair
from service.web.responses import NO_STORE

M = TypeVar("M", bound=BaseModel)


async def rotated(presented: str | None) -> tuple[TokenPair | AccessTokens, Headers]:
    """Spend ``presented`` (else the refresh cookie) and answer as its mode says."""
    cookie_mode = refresh_cookie.requested()
    if presented is None:
        presented = refresh_cookie.presented(services())
        if presented is None:
            raise InvalidRequest("Send the refresh token as refresh_token, or the refresh cookie.")
        cookie_mode = True
    if cookie_mode:
        refresh_cookie.check(services())
    pair = await rotate(services(), presented)
    if not cookie_mode:
        return TokenPair.model_validate(pair), NO_STORE
    cookie = refresh_cookie.with_refresh_cookie(
        services(), NO_STORE, pair.refresh_token, pair.refresh_expires_in
    )
    return AccessTokens.model_validate(pair), cookie


def grant_type(body: object, *supported: str) -> str | None:
    """The body's ``grant_type`` if sent; one not ``supported`` here is
    ``unsupported_grant_type`` (RFC 6749 section 5.2)."""
    found = body.get("grant_type") if isinstance(body, dict) else None
    if found is not None and found not in supported:
        names = " or ".join(f"grant_type={name}" for name in supported)
        raise UnsupportedGrantType(f"Only {names} is supported at this endpoint.")
    return found if isinstance(found, str) else None


def parse_token_request(model: type[M], data: object) -> M:
    """Token-endpoint bodies fail as RFC 6749 section 5.2 says: 400 ``invalid_request``."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(
            "The request is missing a field or has a malformed one.",
            errors=validation_errors(error),
        ) from None
