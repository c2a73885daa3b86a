"""The email blueprint: the caller's address, its verification, and password reset by email.

Every route here answers 404 problem+json while the service sends no email (``email_enabled``
false): the features do not exist then.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from quart import Blueprint, current_app
from quart_schema import tag_blueprint, validate_request, validate_response

from service.accounts import claims, recovery, verification
from service.accounts.schemas import (
    Accepted,
    EmailChange,
    EmailVerification,
    PasswordForgotten,
    PasswordReset,
)
from service.auth.bearer import current_principal, login_required
from service.errors import NotFound, ValidationFailed
from service.services import services
from service.web.openapi import no_content, problems
from service.web.request_limit import request_limited
from service.web.requests import client_address

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
