"""``POST /login`` and ``POST /login/mfa``, added to the sessions' blueprint ("auth"): the
account's password (``service.accounts``), then the second factor if it is on
(``service.mfa``), then a new session and device credential (``service.sessions``)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime

from quart import request
from quart_schema import DataSource, document_querystring, document_request, validate_response
from werkzeug.datastructures import Headers

from service.accounts.flows import log_in
from service.accounts.routes import mail_link_after_refused_login
from service.login.schemas import (
    CookieLoginTokens,
    LoginAnswer,
    LoginTokens,
    MfaChallenge,
    MfaLoginRequest,
    PasswordGrant,
)
from service.mfa import login_step
from service.mfa.flows import SecondFactor
from service.services import services
from service.sessions import devices, refresh_cookie
from service.sessions.rotation import start_session
from service.sessions.routes import bp
from service.sessions.rules import PASSWORD_AMR, PASSWORD_AND_OTP_AMR, ClientInfo
from service.sessions.schemas import CookieMode, RefreshGrant
from service.sessions.token_endpoint import grant_type, parse_token_request, rotated
from service.web.openapi import problems, response_headers
from service.web.request_limit import request_limited
from service.web.requests import client_address, read_form_or_json
from service.web.responses import NO_STORE

__all__ = ["bp"]


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
    if grant_type(body, "password", "refresh_token") == "refresh_token":
        tokens, answer_headers = await rotated(
            parse_token_request(RefreshGrant, body).refresh_token
        )
        return LoginAnswer(tokens), 200, answer_headers
    grant = parse_token_request(PasswordGrant, body)
    cookie_mode = refresh_cookie.requested()
    if cookie_mode:
        refresh_cookie.check(services())
    address = client_address()
    user = await log_in(
        services(),
        grant.username,
        grant.password,
        address=address,
        device_credential=devices.presented_credential(services(), grant.device_token),
        unverified=mail_link_after_refused_login,
    )
    pending = await login_step.challenge(services(), user.id)
    if pending is not None:
        return LoginAnswer(_mfa_challenge(pending.value, pending.expires_at)), 200, NO_STORE
    return await _new_login(user.id, PASSWORD_AMR, address, cookie_mode=cookie_mode)


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
    body = parse_token_request(MfaLoginRequest, await read_form_or_json())
    cookie_mode = refresh_cookie.requested()
    if cookie_mode:
        refresh_cookie.check(services())
    address = client_address()
    user_id = await login_step.complete_login(
        services(),
        body.mfa_token,
        SecondFactor(code=body.code, recovery_code=body.recovery_code),
        address=address,
    )
    return await _new_login(user_id, PASSWORD_AND_OTP_AMR, address, cookie_mode=cookie_mode)


async def _new_login(
    user_id: uuid.UUID, amr: str, address: str | None, *, cookie_mode: bool
) -> tuple[LoginAnswer, int, Headers]:
    """The answer of a completed login: a new session and a new device credential, and in
    cookie mode the refresh token as a cookie instead of in the body."""
    client = ClientInfo(user_agent=request.headers.get("User-Agent"), address=address)
    pair = await start_session(services(), user_id, client, amr)
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
