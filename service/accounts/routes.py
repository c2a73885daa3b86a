"""The accounts blueprint: signup, the caller's account (``/me``, its password, its deletion),
its email address and verification, and password reset by email.

The email routes answer 404 problem+json while the service sends no email (``email_enabled``
false): the features do not exist then.

Signup and ``/me`` (the account itself, its password, its deletion) are on the sessions'
blueprint ("auth"), where they were before they moved here: their endpoint names (``auth.signup``
is the key of its request limit and named in its log lines) and OpenAPI tag stay as they were.
The email routes are on this package's own blueprint ("accounts").
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from quart import Blueprint, current_app
from quart_schema import document_headers, tag_blueprint, validate_request, validate_response
from werkzeug.datastructures import Headers

from service.accounts import claims, flows, recovery, verification
from service.accounts.queries import insert_user, select_user
from service.accounts.schemas import (
    Accepted,
    EmailChange,
    EmailVerification,
    PasswordChange,
    PasswordForgotten,
    PasswordReset,
    SignupRequest,
    UserOut,
)
from service.db import Writer
from service.errors import NotFound, ValidationFailed
from service.idempotency.guard import SIGNUP_SCOPE, once
from service.idempotency.schemas import IdempotencyHeader
from service.services import services
from service.sessions.bearer import current_principal, login_required
from service.sessions.routes import bp as auth_bp
from service.web.openapi import no_content, problems, response_headers
from service.web.request_limit import request_limited
from service.web.requests import client_address
from service.web.responses import headers

P = ParamSpec("P")
R = TypeVar("R")

bp = Blueprint("accounts", __name__)
tag_blueprint(bp, ["accounts"])

NO_EMAIL = "This service sends no email, so it has no email features."
RESET_ACCEPTED = Accepted(
    detail="If an account has this address, a link to reset its password is on its way. "
    "It works once, until it expires."
)
RESEND_ACCEPTED = Accepted(detail="A new verification link is on its way; older ones stop working.")


def email_feature(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """404 while the service sends no email, before the body is looked at."""

    @wraps(handler)
    async def gated(*args: P.args, **kwargs: P.kwargs) -> R:
        if not services().settings.email_enabled:
            raise NotFound(NO_EMAIL)
        return await handler(*args, **kwargs)

    return gated


async def admit_signup_message(email: str) -> None:
    """Count the message a signup with ``email`` causes against the caller's quota
    (``verification.admit_signup_message``): only once the account can be made, so a
    refused signup spends nothing."""
    await verification.admit_signup_message(services(), email, address=client_address())


def mail_claim_after_answer(*user_ids: uuid.UUID) -> None:
    """After the answer, mail each account's unverified address a link, or its holder a
    notice (``claims.mail_claim``): the answer is the same either way, and so is its time."""
    for user_id in user_ids:
        current_app.add_background_task(claims.mail_claim, services(), user_id)


async def mail_link_after_refused_login(user_id: uuid.UUID) -> None:
    """A login refused for an unverified address (the password was right) mails a new link,
    limited per account: a lost or expired link must not lock its owner out."""
    if await services().limits.mail_allowed("verify", f"account:{user_id}"):
        mail_claim_after_answer(user_id)


def refuse_email_field() -> None:
    """An address given while the service sends no email: 422 on the ``email`` field."""
    if not services().settings.email_enabled:
        raise ValidationFailed(
            NO_EMAIL + " Leave out `email`.",
            errors=[{"field": "email", "message": "this service sends no email"}],
        )


@auth_bp.post("/signup")
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
        refuse_email_field()
    password_hash = await services().passwords.hash(data.password)
    claimed: list[uuid.UUID] = []

    async def create(db: Writer) -> tuple[UserOut, int, Headers]:
        user = await insert_user(db, data.username, password_hash, data.email)
        if user.email is not None:  # counted only once the account can be made
            await admit_signup_message(user.email)
            claimed.append(user.id)
        return UserOut.model_validate(user), 201, headers(Location="/me")

    # The password stays out of the fingerprint: no fast hash of it is ever stored. Without
    # an email the fingerprint is what it was before accounts had one.
    fields = data.model_dump(mode="json", exclude={"password"}, exclude_none=True)
    answer = await once(SIGNUP_SCOPE, fields, create)
    mail_claim_after_answer(*claimed)
    return answer


@auth_bp.get("/me")
@login_required
@validate_response(UserOut)
@problems(401, 404)
async def me() -> UserOut:
    """The account of the caller."""
    async with services().db.read() as db:
        user = await select_user(db, current_principal().user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    return UserOut.model_validate(user)


@auth_bp.post("/me/password")
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
    await flows.change_password(
        services(),
        principal.user_id,
        principal.session_id,
        data.current_password,
        data.new_password,
        address=client_address(),
    )
    return "", 204


@auth_bp.delete("/me")
@login_required
@no_content
@problems(401)
async def delete_me() -> tuple[str, int]:
    """Delete the caller's account with its items and sessions.

    Every token of the account stops working at once; the username becomes free again.
    """
    principal = current_principal()
    await flows.delete_account(services(), principal.user_id, principal.session_id)
    return "", 204


@bp.post("/me/email")
@login_required
@validate_request(EmailChange)
@no_content
@problems(401, 422, 429, 503)
async def change_email(data: EmailChange) -> tuple[str, int]:
    """Set or change the caller's email address.

    The new address is unverified until the link mailed to it is followed; links sent to the
    old address stop working, and a verified old address gets a notice. The same address in
    other letter case only changes how it is written. The answer is the same whether or not
    another account has verified the address (its holder is told instead of a link being
    sent). A wrong `current_password` is `422` on that field and is limited like failed
    logins (`429` with `Retry-After`); so are the messages mailed, as at `/me/email/resend`.
    `422` too when the service sends no email.
    """
    refuse_email_field()
    principal = current_principal()
    changed = await verification.change_email(
        services(),
        principal.user_id,
        principal.session_id,
        data.current_password,
        data.email,
        address=client_address(),
    )
    if changed:
        mail_claim_after_answer(principal.user_id)
    return "", 204


@bp.post("/me/email/resend")
@login_required
@email_feature
@validate_response(Accepted, 202)
@problems(401, 404, 409, 429)
async def resend_verification() -> tuple[Accepted, int]:
    """Mail a new verification link to the caller's unverified address.

    Older links stop working. `409` if the account has no address or it is verified already.
    If another account has verified the address, its holder is told instead; the answer is the
    same. Limited per account (`EMAIL_REQUESTS_PER_HOUR`, a quota only the account's own
    requests spend): `429` with `Retry-After`.
    """
    user_id = current_principal().user_id
    await verification.resend(services(), user_id)
    mail_claim_after_answer(user_id)
    return RESEND_ACCEPTED, 202


@bp.post("/verify-email")
@request_limited
@email_feature
@validate_request(EmailVerification)
@no_content
@problems(400, 404, 422, 429)
async def verify_email(data: EmailVerification) -> tuple[str, int]:
    """Confirm an email address with the token of the link mailed to it.

    No login needed: the token is the proof. It works once, until `EMAIL_TOKEN_TTL`, and only
    while the account still has the address it was sent to and no other account verified it
    first; otherwise `400`. Other accounts that gave the address lose it.
    """
    await claims.confirm(services(), data.token)
    return "", 204


@bp.post("/password/forgot")
@request_limited
@email_feature
@validate_request(PasswordForgotten)
@validate_response(Accepted, 202)
@problems(404, 422, 429)
async def forgot_password(data: PasswordForgotten) -> tuple[Accepted, int]:
    """Ask for a password reset link by email.

    Always `202` with the same body, whether or not an account has verified the address: the
    lookup and the message happen after the answer, and only a verified address gets one.
    The link works once, for `RESET_TOKEN_TTL`; a newer request or any password change kills
    it. Limited per address and client network, and per network (`EMAIL_REQUESTS_PER_HOUR`,
    and `AUTH_REQUESTS_PER_MINUTE`): `429` with `Retry-After`.
    """
    await recovery.admit_forgot(services(), data.email, address=client_address())
    current_app.add_background_task(recovery.send_reset_link, services(), data.email)
    return RESET_ACCEPTED, 202


@bp.post("/password/reset")
@request_limited
@email_feature
@validate_request(PasswordReset)
@no_content
@problems(400, 404, 422, 429, 503)
async def reset_password(data: PasswordReset) -> tuple[str, int]:
    """Set a new password with the token of a reset link; every session of the account ends.

    The new password follows the signup rules. Every access and refresh token of the account
    stops working at once, and the address gets a notice. A token that is unknown, used,
    expired or superseded (by a newer link or a password change): `400`. Too many password
    hashes waiting: `503` with `Retry-After`.
    """
    await recovery.reset(services(), data.token, data.new_password)
    return "", 204
