"""The auth blueprint: refresh, logout and the caller's sessions.

Routes that were on it before their code moved to the package they belong to stay on it, so
their endpoint names (the keys of request limits, named in log lines) and OpenAPI tag stay as
they were: ``service.login.routes`` adds ``/login`` and ``/login/mfa``,
``service.accounts.routes`` signup and ``/me``, ``service.oauth.routes`` the JWK Set.
"""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from quart import Blueprint, request
from quart_schema import (
    document_querystring,
    document_request,
    security_scheme,
    tag_blueprint,
    validate_response,
)
from werkzeug.datastructures import Headers

from service.errors import validation_failed
from service.services import services
from service.sessions import refresh_cookie
from service.sessions.bearer import (
    BEARER_SECURITY,
    bearer_token,
    current_principal,
    login_required,
)
from service.sessions.logout import end_session, log_out, logout_credential
from service.sessions.queries import select_live_sessions
from service.sessions.schemas import (
    CookieMode,
    LogoutRequest,
    RefreshAnswer,
    RefreshRequest,
    SessionList,
    SessionOut,
)
from service.sessions.token_endpoint import grant_type, parse_token_request, rotated
from service.web.openapi import no_content, optional_body, problems, response_headers
from service.web.request_limit import request_limited
from service.web.requests import read_form_or_json

bp = Blueprint("auth", __name__)
tag_blueprint(bp, ["auth"])


@bp.post("/refresh")
@request_limited
@document_request(RefreshRequest)
@document_querystring(CookieMode)
@optional_body
@validate_response(RefreshAnswer)
@response_headers(200, "Cache-Control")
@problems(400, 403, 429)
async def refresh() -> tuple[RefreshAnswer, int, Headers]:
    """Spend a refresh token for a new pair.

    The presented refresh token is spent. Presented again within `REFRESH_REUSE_INTERVAL`
    seconds of that, it gets the same new refresh token again (concurrent refreshes of one
    client all succeed); later, or for an older token, the whole session is revoked (RFC 9700
    section 4.14): the tokens issued after it stop working too. The body may carry
    `grant_type=refresh_token` (RFC 6749 section 6); another `grant_type` is `400
    unsupported_grant_type`. Too many requests from one address: `429` with `Retry-After`
    (seconds).

    Cookie mode (browsers): without `refresh_token` in the body (or with no body), the
    `__Host-refresh_token` cookie is spent and the new one set the same way, with no
    `refresh_token` in the answer; `?cookie=true` asks for that answer for a token sent in
    the body. Such a request must send `X-Requested-With` (any value) and, if it has an
    `Origin`, this service's or one of `CORS_ORIGINS`, else `403`.
    """
    body = await read_form_or_json() if await request.get_data() else {}
    grant_type(body, "refresh_token")
    tokens, answer_headers = await rotated(parse_token_request(RefreshRequest, body).refresh_token)
    return RefreshAnswer(tokens), 200, answer_headers


@bp.post("/logout")
@request_limited
@document_request(LogoutRequest)
@security_scheme([*BEARER_SECURITY, {}])
@optional_body
@no_content
@problems(401, 403, 422, 429)
async def logout() -> tuple[str, int, Headers]:
    """End this session, every other one, or all of them.

    Name the session with its refresh token in the body (JSON or form fields, as at
    `/refresh`) or with a bearer access token; the refresh token wins if both are sent.
    `scope`: `local` (default) ends that session, `others` every other session of the user,
    `global` all of them. Their access tokens stop working at once.

    Browsers in cookie mode send neither: the `__Host-refresh_token` cookie names the session
    (with `X-Requested-With` and an allowed or no `Origin`, else `403`), and a logout that
    carries the cookie clears it.

    `local` is idempotent: a token of ours that has not expired gets `204` even if its session
    has ended already (a retried logout). `others` and `global` need a token of a live session
    (for a refresh token: the unspent one). Without a valid token: `401`. Too many requests
    from one address: `429` with `Retry-After` (seconds), as at `/refresh`: both work without
    a bearer token.
    """
    body = await _logout_request()
    access = bearer_token(request.headers.get("Authorization"))
    cookie = refresh_cookie.presented(services())
    presented = body.refresh_token
    if presented is None and access is None and cookie is not None:
        refresh_cookie.check(services())
        presented = cookie
    token = logout_credential(services(), presented, access)
    await log_out(services(), token, body.scope)
    if cookie is None:
        return "", 204, Headers()
    return "", 204, refresh_cookie.clearing(services(), Headers())


@bp.get("/sessions")
@login_required
@validate_response(SessionList)
@problems(401)
async def list_sessions() -> SessionList:
    """The caller's live sessions (logins), newest first.

    `current` marks the session of the access token used for this request.
    """
    principal = current_principal()
    async with services().db.read() as db:
        live = await select_live_sessions(db, principal.user_id)
    return SessionList(
        sessions=[
            SessionOut.model_validate(session).model_copy(
                update={"current": session.id == principal.session_id}
            )
            for session in live
        ]
    )


@bp.delete("/sessions/<id:session_id>")
@login_required
@no_content
@problems(401, 404)
async def delete_session(session_id: uuid.UUID) -> tuple[str, int]:
    """End one of the caller's sessions (log a device out); its tokens stop working at once.

    `404` for an id that is not a live session of the caller.
    """
    await end_session(services(), current_principal().user_id, session_id)
    return "", 204


async def _logout_request() -> LogoutRequest:
    """The logout body: empty (bearer logout), JSON or form fields; 422 if malformed."""
    data = await read_form_or_json() if await request.get_data() else {}
    try:
        return LogoutRequest.model_validate(data)
    except ValidationError as error:
        raise validation_failed(error) from None
