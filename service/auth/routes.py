"""The auth blueprint: signup, login (and its second step), refresh, logout, sessions and the
caller's own account."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import ValidationError
from quart import Blueprint, request
from quart_schema import (
    DataSource,
    document_headers,
    document_querystring,
    document_request,
    security_scheme,
    tag_blueprint,
    validate_request,
    validate_response,
)
from werkzeug.datastructures import Headers

from service.accounts import routes as email_routes
from service.auth import devices, mfa, mfa_login, refresh_cookie, sessions, users
from service.auth.bearer import BEARER_SECURITY, bearer_token, current_principal, login_required
from service.auth.mfa_schemas import LoginAnswer, MfaChallenge, MfaLoginRequest
from service.auth.schemas import (
    AccessTokens,
    CookieLoginTokens,
    CookieMode,
    JwkSet,
    LoginTokens,
    LogoutRequest,
    PasswordChange,
    PasswordGrant,
    RefreshAnswer,
    RefreshGrant,
    RefreshRequest,
    SessionList,
    SessionOut,
    SignupRequest,
    TokenPair,
    UserOut,
)
from service.db import Writer
from service.errors import (
    InvalidRequest,
    NotFound,
    UnsupportedGrantType,
    validation_errors,
    validation_failed,
)
from service.idempotency.guard import SIGNUP_SCOPE, once
from service.idempotency.schemas import IdempotencyHeader
from service.services import services
from service.web.openapi import no_content, optional_body, problems, response_headers
from service.web.request_limit import request_limited
from service.web.requests import client_address, read_form_or_json
from service.web.responses import NO_STORE, headers

bp = Blueprint("auth", __name__)
tag_blueprint(bp, ["auth"])


@bp.post("/signup")
@request_limited
@document_headers(IdempotencyHeader)
@validate_request(SignupRequest)
@validate_response(UserOut, 201)
@response_headers(201, "Location")
@problems(409, 422, 429, 503)
async def signup(data: SignupRequest) -> tuple[UserOut, int, Headers]:
    """Create an account.

    Usernames are unique ignoring letter case (`409`); the password is stored bcrypt-SHA256
    hashed. An `email` starts unverified and gets a link, or, if another account verified it,
    that account a notice: the answer is the same either way (`422` if the service sends no
    email). Messages are limited per hour, requests per minute: `429` with `Retry-After`. Too
    many password checks waiting: `503` with `Retry-After`. With an `Idempotency-Key`, a retry
    with the same key and username gets the first answer again.
    """
    if data.email is not None:
        email_routes.refuse_email_field()
    password_hash = await services().passwords.hash(data.password)
    claimed: list[uuid.UUID] = []

    async def create(db: Writer) -> tuple[UserOut, int, Headers]:
        user = await users.insert_user(db, data.username, password_hash, data.email)
        if user.email is not None:  # counted only once the account can be made
            await email_routes.admit_signup_message(user.email)
            claimed.append(user.id)
        return UserOut.model_validate(user), 201, headers(Location="/me")

    # The password stays out of the fingerprint: no fast hash of it is ever stored. Without
    # an email the fingerprint is what it was before accounts had one.
    fields = data.model_dump(mode="json", exclude={"password"}, exclude_none=True)
    answer = await once(SIGNUP_SCOPE, fields, create)
    email_routes.mail_claim_after_answer(*claimed)
    return answer


@bp.post("/login")
@request_limited
@document_request(PasswordGrant, source=DataSource.FORM)
@document_querystring(CookieMode)
@validate_response(LoginAnswer)
@response_headers(200, "Cache-Control", optional=("Set-Cookie",))
@problems(400, 403, 429, 503)
async def login() -> tuple[LoginAnswer, int, Headers]:
    """Log in with a username and password; get an access and a refresh token.

    The OAuth 2.0 password grant (RFC 6749 section 4.3): form fields as
    `application/x-www-form-urlencoded` or `multipart/form-data`, or a JSON object. Every
    login starts a new session. Failures are `400` with `error: invalid_grant`, the same for an
    unknown user and a wrong password. After too many failures for a username or from an
    address the answer is `429` with `Retry-After` (seconds), even for the right password.

    Also the refresh grant (RFC 6749 section 6): `grant_type=refresh_token` with
    `refresh_token` is a refresh, exactly as `POST /refresh` (no device credential). Another
    `grant_type` is `400 unsupported_grant_type`.

    `?cookie=true` (browsers): the refresh token is set as the cookie `__Host-refresh_token`
    (`HttpOnly; Secure; SameSite=Strict; Path=/`) and left out of the body. Such a request
    must send `X-Requested-With` (any value) and, if it has an `Origin`, this service's or one
    of `CORS_ORIGINS`, else `403`.

    Every login also returns a device credential, as `device_token` and as the `HttpOnly`
    cookie `__Host-device`. A later login that presents it (the cookie, or the `device_token`
    field, which wins) is limited per device instead of by the username-wide limit, so
    strangers failing for this username do not lock this client out.

    When more password checks are waiting than can be done within `PASSWORD_QUEUE_WAIT`, the
    answer is `503` with `Retry-After` at once, for known and unknown usernames alike.

    With `REQUIRE_VERIFIED_EMAIL`, an unverified address is `403` (type `...:email-not-verified`)
    once the password checked out, and a new link is mailed to it (a few an hour at most).
    For an account with a TOTP second factor on, the right password gets
    `{"mfa_required": true, "mfa_token", "expires_in"}` instead (no tokens, no cookie): finish
    the login at `POST /login/mfa`.
    """
    body = await read_form_or_json()
    if _grant_type(body, "password", "refresh_token") == "refresh_token":
        tokens, answer_headers = await _rotated(_parse(RefreshGrant, body).refresh_token)
        return LoginAnswer(tokens), 200, answer_headers
    grant = _parse(PasswordGrant, body)
    cookie_mode = refresh_cookie.requested()
    if cookie_mode:
        refresh_cookie.check(services())
    address = client_address()
    user = await users.log_in(
        services(),
        grant.username,
        grant.password,
        address=address,
        device_credential=devices.presented_credential(services(), grant.device_token),
        unverified=email_routes.mail_link_after_refused_login,
    )
    pending = await mfa_login.challenge(services(), user.id)
    if pending is not None:
        return LoginAnswer(_mfa_challenge(pending.value, pending.expires_at)), 200, NO_STORE
    return await _new_login(user.id, sessions.PASSWORD_AMR, address, cookie_mode=cookie_mode)


@bp.post("/login/mfa")
@request_limited
@document_request(MfaLoginRequest)
@document_querystring(CookieMode)
@validate_response(LoginAnswer)
@response_headers(200, "Cache-Control", "Set-Cookie")
@problems(400, 403, 429, 503)
async def login_mfa() -> tuple[LoginAnswer, int, Headers]:
    """Finish a login that needs a second factor, with the mfa_token of /login and a code.

    `code` is the six digits the authenticator app shows (the previous or next 30-second
    code is accepted too, for clock drift; each code works once), or send `recovery_code`
    instead. The answer is that of a login: a new session's tokens and a device credential.
    The `mfa_token` is spent by the login it completes; a bad, expired or spent one, one from
    before a password or second-factor change, or a wrong code, is `400` with
    `error: invalid_grant`. Wrong codes are limited per account, whatever device credential
    comes with them, and per address: `429` with `Retry-After`.
    `?cookie=true` puts the refresh token in the cookie, with the same CSRF rules as at
    `/login`.
    """
    body = _parse(MfaLoginRequest, await read_form_or_json())
    cookie_mode = refresh_cookie.requested()
    if cookie_mode:
        refresh_cookie.check(services())
    address = client_address()
    user_id = await mfa_login.complete_login(
        services(),
        body.mfa_token,
        mfa.SecondFactor(code=body.code, recovery_code=body.recovery_code),
        address=address,
    )
    return await _new_login(
        user_id, sessions.PASSWORD_AND_OTP_AMR, address, cookie_mode=cookie_mode
    )


async def _new_login(
    user_id: uuid.UUID, amr: str, address: str | None, *, cookie_mode: bool
) -> tuple[LoginAnswer, int, Headers]:
    """The answer of a completed login: a new session and a new device credential, and in
    cookie mode the refresh token as a cookie instead of in the body."""
    client = sessions.ClientInfo(user_agent=request.headers.get("User-Agent"), address=address)
    pair = await sessions.start_session(services(), user_id, client, amr)
    device = services().devices.issue(user_id)
    fields = {**asdict(pair), "device_token": device.value}
    with_device = devices.with_device_cookie(services(), NO_STORE, device)
    if not cookie_mode:
        return LoginAnswer(LoginTokens.model_validate(fields)), 200, with_device
    answer = LoginAnswer(CookieLoginTokens.model_validate(fields))
    return (
        answer,
        200,
        refresh_cookie.with_refresh_cookie(
            services(), with_device, pair.refresh_token, pair.refresh_expires_in
        ),
    )


def _mfa_challenge(mfa_token: str, expires_at: int) -> MfaChallenge:
    remaining = max(expires_at - int(datetime.now(UTC).timestamp()), 0)
    return MfaChallenge(mfa_token=mfa_token, expires_in=remaining)


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
    _grant_type(body, "refresh_token")
    tokens, answer_headers = await _rotated(_parse(RefreshRequest, body).refresh_token)
    return RefreshAnswer(tokens), 200, answer_headers


async def _rotated(presented: str | None) -> tuple[TokenPair | AccessTokens, Headers]:
    """Spend ``presented`` (else the refresh cookie) and answer as its mode says."""
    cookie_mode = refresh_cookie.requested()
    if presented is None:
        presented = refresh_cookie.presented(services())
        if presented is None:
            raise InvalidRequest("Send the refresh token as refresh_token, or the refresh cookie.")
        cookie_mode = True
    if cookie_mode:
        refresh_cookie.check(services())
    pair = await sessions.rotate(services(), presented)
    if not cookie_mode:
        return TokenPair.model_validate(pair), NO_STORE
    cookie = refresh_cookie.with_refresh_cookie(
        services(), NO_STORE, pair.refresh_token, pair.refresh_expires_in
    )
    return AccessTokens.model_validate(pair), cookie


@bp.get("/me")
@login_required
@validate_response(UserOut)
@problems(401, 404)
async def me() -> UserOut:
    """The account of the caller."""
    async with services().db.read() as db:
        user = await users.select_user(db, current_principal().user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    return UserOut.model_validate(user)


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
    token = sessions.logout_credential(services(), presented, access)
    await sessions.log_out(services(), token, body.scope)
    if cookie is None:
        return "", 204, Headers()
    return "", 204, refresh_cookie.clearing(services(), Headers())


@bp.post("/me/password")
@login_required
@validate_request(PasswordChange)
@no_content
@problems(401, 422, 429, 503)
async def change_password(data: PasswordChange) -> tuple[str, int]:
    """Change the caller's password; every other session of the account ends.

    The session of the access token used stays logged in. The new password follows the
    signup rules (length, not the username, not a common password). A wrong
    `current_password` is `422` with a field error on `current_password`, never `401`: the
    caller's tokens are still good. Wrong current passwords are limited like failed logins:
    per client address, and per session (the session is a known device of the account, so
    failures elsewhere never lock it out): `429` with `Retry-After` while a limit holds. Too
    many password checks waiting: `503` with `Retry-After`.
    """
    principal = current_principal()
    await users.change_password(
        services(),
        principal.user_id,
        principal.session_id,
        data.current_password,
        data.new_password,
        address=client_address(),
    )
    return "", 204


@bp.delete("/me")
@login_required
@no_content
@problems(401)
async def delete_me() -> tuple[str, int]:
    """Delete the caller's account with its items and sessions.

    Every token of the account stops working at once; the username becomes free again.
    """
    principal = current_principal()
    await users.delete_account(services(), principal.user_id, principal.session_id)
    return "", 204


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
        live = await sessions.select_live_sessions(db, principal.user_id)
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
    await sessions.end_session(services(), current_principal().user_id, session_id)
    return "", 204


M = TypeVar("M", PasswordGrant, RefreshGrant, RefreshRequest, MfaLoginRequest)


async def _logout_request() -> LogoutRequest:
    """The logout body: empty (bearer logout), JSON or form fields; 422 if malformed."""
    data = await read_form_or_json() if await request.get_data() else {}
    try:
        return LogoutRequest.model_validate(data)
    except ValidationError as error:
        raise validation_failed(error) from None


def _grant_type(body: object, *supported: str) -> str | None:
    """The body's ``grant_type`` if sent; one not ``supported`` here is
    ``unsupported_grant_type`` (RFC 6749 section 5.2)."""
    grant_type = body.get("grant_type") if isinstance(body, dict) else None
    if grant_type is not None and grant_type not in supported:
        names = " or ".join(f"grant_type={name}" for name in supported)
        raise UnsupportedGrantType(f"Only {names} is supported at this endpoint.")
    return grant_type if isinstance(grant_type, str) else None


def _parse(model: type[M], data: object) -> M:
    """Token-endpoint bodies fail as RFC 6749 section 5.2 says: 400 ``invalid_request``."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(
            "The request is missing a field or has a malformed one.",
            errors=validation_errors(error),
        ) from None


#: How long verifiers may cache the key set; a new key is published at least this long before
#: it signs (docs/keys.md).
JWKS_MAX_AGE = 300
_JWKS_CACHING = headers(Cache_Control=f"public, max-age={JWKS_MAX_AGE}")


@bp.get("/.well-known/jwks.json")
@validate_response(JwkSet)
async def jwks() -> tuple[JwkSet, int, Headers]:
    """The public keys that verify the service's tokens, as a JWK Set (RFC 7517 section 5).

    Each key has its `kid` (a token's header names its key with it), `alg` and `use: sig`.
    Only public members are published. With HS256 the signing key is a secret, so `keys` is
    empty. Cacheable for five minutes.
    """
    key_set = JwkSet.model_validate(services().tokens.keys.public_jwks())
    return key_set, 200, _JWKS_CACHING
