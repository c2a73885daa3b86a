"""The mfa blueprint: the caller's TOTP second factor (RFC 6238) under ``/me/mfa/totp``.

Every route needs a bearer access token (``/me`` is a protected prefix). The login step that
uses the factor, ``POST /login/mfa``, is in ``service.login`` beside ``/login``.
"""

from __future__ import annotations

from quart import Blueprint
from quart_schema import tag_blueprint, validate_request, validate_response
from werkzeug.datastructures import Headers

from service.mfa import flows
from service.mfa.schemas import (
    RecoveryCodes,
    TotpConfirmation,
    TotpEnrolment,
    TotpEnrolmentRequest,
    TotpRemoval,
    TotpStatus,
)
from service.services import services
from service.sessions.bearer import current_principal, login_required
from service.web.openapi import no_content, problems, response_headers
from service.web.requests import client_address
from service.web.responses import NO_STORE

bp = Blueprint("mfa", __name__)
tag_blueprint(bp, ["mfa"])


@bp.get("/me/mfa/totp")
@login_required
@validate_response(TotpStatus)
@problems(401)
async def totp_status() -> TotpStatus:
    """Whether the caller's TOTP second factor is on, and how many recovery codes are left."""
    found = await flows.status(services(), current_principal().user_id)
    return TotpStatus.model_validate(found, from_attributes=True)


@bp.post("/me/mfa/totp")
@login_required
@validate_request(TotpEnrolmentRequest)
@validate_response(TotpEnrolment)
@response_headers(200, "Cache-Control")
@problems(401, 409, 422, 429, 503)
async def start_totp(data: TotpEnrolmentRequest) -> tuple[TotpEnrolment, int, Headers]:
    """Start setting up an authenticator app: a new secret, as a URI, a QR code and text.

    Nothing changes for logins until `POST /me/mfa/totp/confirm` gets a first code; starting
    again replaces a waiting secret. While a factor is on the answer is `409`: turn it off
    first (`DELETE /me/mfa/totp`), so a stolen access token alone can never swap the
    authenticator. A wrong `current_password` is `422` on that field, limited as at
    `/me/password` (`429` with `Retry-After`).
    """
    principal = current_principal()
    enrolment = await flows.start_enrolment(
        services(),
        principal.user_id,
        principal.session_id,
        data.current_password,
        address=client_address(),
    )
    answer = TotpEnrolment(
        otpauth_uri=enrolment.uri, secret=enrolment.secret, qr_svg=enrolment.qr_svg
    )
    return answer, 200, NO_STORE


@bp.post("/me/mfa/totp/confirm")
@login_required
@validate_request(TotpConfirmation)
@validate_response(RecoveryCodes)
@response_headers(200, "Cache-Control")
@problems(401, 409, 422, 429)
async def confirm_totp(data: TotpConfirmation) -> tuple[RecoveryCodes, int, Headers]:
    """Turn the second factor on with the first code of the new authenticator.

    The answer holds ten recovery codes, shown this once. Every other session of the account
    ends (this one stays). `409` when no enrolment is waiting; a wrong code is `422` on
    `code`; too many wrong codes: `429` with `Retry-After`.
    """
    principal = current_principal()
    codes = await flows.confirm_enrolment(
        services(), principal.user_id, principal.session_id, data.code, address=client_address()
    )
    return RecoveryCodes(recovery_codes=codes), 200, NO_STORE


@bp.delete("/me/mfa/totp")
@login_required
@validate_request(TotpRemoval)
@no_content
@problems(401, 404, 422, 429, 503)
async def remove_totp(data: TotpRemoval) -> tuple[str, int]:
    """Turn the second factor off: the password and a current code, or a recovery code.

    Its recovery codes go too, and every other session of the account ends. `404` when no
    factor is on; a wrong password or code is `422` on its field; too many: `429` with
    `Retry-After`.
    """
    principal = current_principal()
    await flows.turn_off(
        services(),
        principal.user_id,
        principal.session_id,
        data.current_password,
        flows.SecondFactor(code=data.code, recovery_code=data.recovery_code),
        address=client_address(),
    )
    return "", 204
