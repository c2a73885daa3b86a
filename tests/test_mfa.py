"""The TOTP second factor over HTTP: enrolment, the login's second step, removal, and attacks on
each rule (replayed codes and tokens, wrong token kinds, stolen sessions).

Codes come from a real TOTP clock (``tests/mfa_helpers.py``). Guessing limits are
``tests/test_mfa_guessing.py``; what a pending ``mfa_token`` is bound to,
``tests/test_mfa_token_binding.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from typing import Any

import pyotp
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from service.db.models import TotpFactor
from service.services import services
from tests.helpers import Account
from tests.mfa_helpers import (
    T0,
    Enrolled,
    at,
    enrol,
    expired_mfa_token,
    mfa_token,
    password_step,
    remove,
    second_step,
    start,
)
from tests.session_helpers import assert_access_refused, assert_access_works, bearer, refresh


def _payload(token: str) -> dict[str, Any]:
    """The claims of a token, unverified (the service verified it; the test reads it)."""
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


@pytest.fixture
def events(
    app: Quart, security_events: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    """The security events of the test, INFO ones included (after the app set up logging)."""
    caplog.set_level(logging.INFO, logger="service.security")
    return security_events


@pytest.fixture
async def enrolled(app: Quart, client: Client, alice: Account) -> Enrolled:
    return await enrol(app, client, alice)


# --- enrolment ------------------------------------------------------------------------------


async def test_enrolment_gives_the_uri_a_qr_code_and_the_secret_stored_encrypted(
    app: Quart, client: Client, alice: Account
) -> None:
    response = await start(client, alice)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.get_json()
    totp = pyotp.parse_uri(body["otpauth_uri"])
    assert body["otpauth_uri"].startswith("otpauth://totp/service:alice?")
    assert "issuer=service" in body["otpauth_uri"]
    assert totp.secret == body["secret"]
    assert len(body["secret"]) == 32
    assert body["qr_svg"].startswith("data:image/svg+xml")
    async with services(app).db.read() as db:
        row = await db.first(select(TotpFactor))
    assert row is not None
    assert body["secret"] not in row["secret"]
    assert services(app).secret_box.open(row["secret"], alice.id) == body["secret"]
    status = await client.get("/me/mfa/totp", headers=alice.headers)
    assert await status.get_json() == {
        "enabled": False,
        "pending": True,
        "confirmed_at": None,
        "recovery_codes_left": 0,
    }


async def test_a_pending_enrolment_changes_nothing_for_logins(
    client: Client, alice: Account
) -> None:
    await start(client, alice)

    assert "access_token" in await password_step(client, alice)


async def test_enrolment_needs_the_current_password(client: Client, alice: Account) -> None:
    response = await client.post(
        "/me/mfa/totp", json={"current_password": "not-the-passw0rd"}, headers=alice.headers
    )

    assert response.status_code == 422
    assert (await response.get_json())["errors"][0]["field"] == "current_password"
    status = await (await client.get("/me/mfa/totp", headers=alice.headers)).get_json()
    assert status["pending"] is False


async def test_enrolment_needs_an_access_token(client: Client) -> None:
    response = await client.post("/me/mfa/totp", json={"current_password": "whatever-it-is"})

    assert response.status_code == 401


async def test_a_wrong_first_code_turns_nothing_on(
    app: Quart, client: Client, alice: Account
) -> None:
    at(app, T0)
    body = await (await start(client, alice)).get_json()
    wrong = pyotp.TOTP(body["secret"]).at(T0 + 300)

    response = await client.post(
        "/me/mfa/totp/confirm", json={"code": wrong}, headers=alice.headers
    )

    assert response.status_code == 422
    assert (await response.get_json())["errors"][0]["field"] == "code"
    assert "access_token" in await password_step(client, alice)


@pytest.mark.parametrize("code", ["12345", "1234567", "12345a", "", " 123456"])
async def test_a_malformed_code_is_a_422(client: Client, alice: Account, code: str) -> None:
    await start(client, alice)

    response = await client.post("/me/mfa/totp/confirm", json={"code": code}, headers=alice.headers)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


async def test_confirming_without_an_enrolment_is_a_409(client: Client, alice: Account) -> None:
    response = await client.post(
        "/me/mfa/totp/confirm", json={"code": "123456"}, headers=alice.headers
    )

    assert response.status_code == 409


async def test_turning_it_on_gives_ten_different_recovery_codes_and_ends_other_sessions(
    app: Quart, client: Client, alice: Account, events: list[logging.LogRecord]
) -> None:
    other = alice.with_tokens(await password_step(client, alice))

    enrolled = await enrol(app, client, alice)

    assert len(set(enrolled.recovery_codes)) == 10
    await assert_access_works(client, alice.access_token)
    await assert_access_refused(client, other.access_token)
    lines = [record.getMessage() for record in events]
    assert any(line.startswith("mfa_enabled") for line in lines)
    assert any("how=mfa_enabled" in line for line in lines)
    assert not any(enrolled.totp.secret in line for line in lines)
    status = await (await client.get("/me/mfa/totp", headers=alice.headers)).get_json()
    assert status["enabled"] is True
    assert status["recovery_codes_left"] == 10


async def test_enrolling_again_while_on_is_refused(client: Client, enrolled: Enrolled) -> None:
    """A stolen access token (and password) must not swap the owner's authenticator."""
    response = await start(client, enrolled.account)

    assert response.status_code == 409
    confirm = await client.post(
        "/me/mfa/totp/confirm",
        json={"code": enrolled.totp.at(T0 + 30)},
        headers=enrolled.account.headers,
    )
    assert confirm.status_code == 409


# --- the login's second step ----------------------------------------------------------------


async def test_login_asks_for_the_second_factor_instead_of_giving_tokens(
    client: Client, enrolled: Enrolled
) -> None:
    response = await client.post(
        "/login",
        form={"username": enrolled.account.username, "password": enrolled.account.password},
    )

    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == {"mfa_required", "mfa_token", "expires_in"}
    assert body["mfa_required"] is True
    assert 0 < body["expires_in"] <= 300
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_wrong_password_still_fails_as_before(client: Client, enrolled: Enrolled) -> None:
    response = await client.post(
        "/login", form={"username": enrolled.account.username, "password": "wrong-passw0rd"}
    )

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_grant"


async def test_the_code_completes_the_login_with_amr_pwd_otp_that_survives_refresh(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    token = await mfa_token(client, enrolled.account)
    at(app, T0 + 30)

    response = await second_step(client, token, code=enrolled.totp.at(T0 + 30))

    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert "device" in response.headers["Set-Cookie"]
    tokens = await response.get_json()
    assert set(tokens) >= {"access_token", "refresh_token", "device_token"}
    assert _payload(tokens["access_token"])["amr"] == ["pwd", "otp"]
    await assert_access_works(client, tokens["access_token"])
    refreshed = await (await refresh(client, tokens["refresh_token"])).get_json()
    assert _payload(refreshed["access_token"])["amr"] == ["pwd", "otp"]


async def test_a_password_login_has_amr_pwd(client: Client, alice: Account) -> None:
    assert _payload(alice.access_token)["amr"] == ["pwd"]
    refreshed = await (await refresh(client, alice.refresh_token)).get_json()
    assert _payload(refreshed["access_token"])["amr"] == ["pwd"]


async def test_the_second_step_takes_form_fields_too(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    token = await mfa_token(client, enrolled.account)
    at(app, T0 + 30)

    response = await client.post(
        "/login/mfa", form={"mfa_token": token, "code": enrolled.totp.at(T0 + 30)}
    )

    assert response.status_code == 200


@pytest.mark.parametrize("offset", [-30, 30])
async def test_one_step_of_clock_drift_is_accepted(
    app: Quart, client: Client, enrolled: Enrolled, offset: int
) -> None:
    token = await mfa_token(client, enrolled.account)
    at(app, T0 + 300)

    response = await second_step(client, token, code=enrolled.totp.at(T0 + 300 + offset))

    assert response.status_code == 200


@pytest.mark.parametrize("offset", [-60, 60, -300])
async def test_codes_two_steps_away_are_refused(
    app: Quart, client: Client, enrolled: Enrolled, offset: int
) -> None:
    token = await mfa_token(client, enrolled.account)
    at(app, T0 + 300)

    response = await second_step(client, token, code=enrolled.totp.at(T0 + 300 + offset))

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_grant"


async def test_a_code_is_accepted_once_even_within_its_step(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    at(app, T0 + 30)
    code = enrolled.totp.at(T0 + 30)
    first = await second_step(client, await mfa_token(client, enrolled.account), code=code)
    assert first.status_code == 200

    replay = await second_step(client, await mfa_token(client, enrolled.account), code=code)

    assert replay.status_code == 400
    assert (await replay.get_json())["error"] == "invalid_grant"


async def test_the_enrolment_code_cannot_be_replayed_at_login(
    client: Client, enrolled: Enrolled
) -> None:
    """The clock is still at T0, whose code confirmed the enrolment."""
    response = await second_step(
        client, await mfa_token(client, enrolled.account), code=enrolled.totp.at(T0)
    )

    assert response.status_code == 400


async def test_an_older_code_is_refused_after_a_newer_one(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    at(app, T0 + 60)
    newer = await second_step(
        client, await mfa_token(client, enrolled.account), code=enrolled.totp.at(T0 + 60)
    )
    assert newer.status_code == 200

    older = await second_step(
        client, await mfa_token(client, enrolled.account), code=enrolled.totp.at(T0 + 30)
    )

    assert older.status_code == 400


async def test_the_mfa_token_completes_one_login_only(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    token = await mfa_token(client, enrolled.account)
    at(app, T0 + 30)
    assert (await second_step(client, token, code=enrolled.totp.at(T0 + 30))).status_code == 200
    at(app, T0 + 60)

    again = await second_step(client, token, code=enrolled.totp.at(T0 + 60))

    assert again.status_code == 400
    assert (await again.get_json())["error"] == "invalid_grant"


async def test_a_wrong_code_leaves_the_mfa_token_usable(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    token = await mfa_token(client, enrolled.account)
    at(app, T0 + 30)
    wrong = await second_step(client, token, code=enrolled.totp.at(T0 + 3000))
    assert wrong.status_code == 400

    right = await second_step(client, token, code=enrolled.totp.at(T0 + 30))

    assert right.status_code == 200


async def test_two_simultaneous_second_steps_with_one_code_log_in_once(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    tokens = [await mfa_token(client, enrolled.account) for _ in range(2)]
    at(app, T0 + 30)
    code = enrolled.totp.at(T0 + 30)

    answers = await asyncio.gather(*(second_step(client, token, code=code) for token in tokens))

    assert sorted(answer.status_code for answer in answers) == [200, 400]


async def test_an_expired_mfa_token_is_refused(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    await mfa_token(client, enrolled.account)
    old = expired_mfa_token(app, enrolled.account.id)
    at(app, T0 + 30)

    response = await second_step(client, old, code=enrolled.totp.at(T0 + 30))

    assert response.status_code == 400


async def test_a_signed_mfa_token_that_was_never_issued_is_refused(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    """Only tokens whose ``jti`` the service stored count: a validly signed one it never
    handed out (a leaked signing key, a token of another deployment) completes nothing."""
    forged = services(app).mfa_tokens.issue(uuid.UUID(enrolled.account.id))
    at(app, T0 + 30)

    response = await second_step(client, forged.value, code=enrolled.totp.at(T0 + 30))

    assert response.status_code == 400


async def test_session_tokens_are_not_mfa_tokens_and_mfa_tokens_are_not_access_tokens(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    at(app, T0 + 30)
    code = enrolled.totp.at(T0 + 30)
    account = enrolled.account
    login = await (
        await client.post("/login", form={"username": "bob", "password": "x"})
    ).get_json()
    assert login["error"] == "invalid_grant"
    for not_mfa in (account.access_token, account.refresh_token):
        response = await second_step(client, not_mfa, code=code)
        assert response.status_code == 400
    token = await mfa_token(client, account)

    await assert_access_refused(client, token)
    assert (await refresh(client, token)).status_code == 400
    logout = await client.post("/logout", json={"refresh_token": token})
    assert logout.status_code == 401
    # And the token still works for its own purpose.
    assert (await second_step(client, token, code=code)).status_code == 200


async def test_device_credentials_are_not_mfa_tokens(
    app: Quart, client: Client, alice: Account
) -> None:
    body = await password_step(client, alice)
    await enrol(app, client, alice)
    at(app, T0 + 30)

    response = await second_step(client, body["device_token"], code="123456")

    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"code": "123456", "recovery_code": "abcd-efgh-ijkl-mnop-qrst-uvwx"},
        {},
        {"code": "12x456"},
        {"code": "123456", "extra": 1},
    ],
)
async def test_a_malformed_second_step_is_invalid_request(
    client: Client, enrolled: Enrolled, body: dict[str, Any]
) -> None:
    token = await mfa_token(client, enrolled.account)

    response = await client.post("/login/mfa", json={"mfa_token": token, **body})

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


# --- recovery codes -------------------------------------------------------------------------


async def test_a_recovery_code_logs_in_once(
    client: Client, enrolled: Enrolled, events: list[logging.LogRecord]
) -> None:
    code = enrolled.recovery_codes[3]
    first = await second_step(client, await mfa_token(client, enrolled.account), recovery_code=code)
    assert first.status_code == 200
    assert _payload((await first.get_json())["access_token"])["amr"] == ["pwd", "otp"]

    again = await second_step(client, await mfa_token(client, enrolled.account), recovery_code=code)

    assert again.status_code == 400
    assert any(record.getMessage().startswith("mfa_recovery_code_used") for record in events)
    assert not any(code in record.getMessage() for record in events)
    headers = bearer((await first.get_json())["access_token"])
    status = await (await client.get("/me/mfa/totp", headers=headers)).get_json()
    assert status["recovery_codes_left"] == 9


async def test_a_recovery_code_may_be_typed_in_capitals_and_without_hyphens(
    client: Client, enrolled: Enrolled
) -> None:
    typed = enrolled.recovery_codes[0].replace("-", " ").upper()

    response = await second_step(
        client, await mfa_token(client, enrolled.account), recovery_code=typed
    )

    assert response.status_code == 200


async def test_another_accounts_recovery_code_is_refused(
    app: Quart, client: Client, enrolled: Enrolled, bob: Account
) -> None:
    bobs = await enrol(app, client, bob)

    response = await second_step(
        client, await mfa_token(client, enrolled.account), recovery_code=bobs.recovery_codes[0]
    )

    assert response.status_code == 400


# --- turning it off -------------------------------------------------------------------------


async def test_turning_it_off_needs_password_and_code_and_ends_other_sessions(
    app: Quart, client: Client, enrolled: Enrolled, events: list[logging.LogRecord]
) -> None:
    at(app, T0 + 30)
    other_token = await mfa_token(client, enrolled.account)
    other = await (
        await second_step(client, other_token, code=enrolled.totp.at(T0 + 30))
    ).get_json()
    at(app, T0 + 60)

    response = await remove(client, enrolled.account, code=enrolled.totp.at(T0 + 60))

    assert response.status_code == 204
    assert "access_token" in await password_step(client, enrolled.account)
    await assert_access_refused(client, other["access_token"])
    await assert_access_works(client, enrolled.account.access_token)
    assert any(record.getMessage().startswith("mfa_disabled") for record in events)
    status = await (await client.get("/me/mfa/totp", headers=enrolled.account.headers)).get_json()
    assert status == {
        "enabled": False,
        "pending": False,
        "confirmed_at": None,
        "recovery_codes_left": 0,
    }


async def test_turning_it_off_with_a_recovery_code(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    response = await remove(client, enrolled.account, recovery_code=enrolled.recovery_codes[0])

    assert response.status_code == 204
    assert "access_token" in await password_step(client, enrolled.account)


async def test_turning_it_off_refuses_a_wrong_password_or_code(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    at(app, T0 + 30)
    code = enrolled.totp.at(T0 + 30)
    wrong_password = await client.delete(
        "/me/mfa/totp",
        json={"current_password": "wrong-passw0rd", "code": code},
        headers=enrolled.account.headers,
    )
    wrong_code = await remove(client, enrolled.account, code=enrolled.totp.at(T0 + 3000))
    replayed = await remove(client, enrolled.account, code=enrolled.totp.at(T0))
    neither = await remove(client, enrolled.account)

    assert wrong_password.status_code == 422
    assert (await wrong_password.get_json())["errors"][0]["field"] == "current_password"
    assert wrong_code.status_code == 422
    assert (await wrong_code.get_json())["errors"][0]["field"] == "code"
    assert replayed.status_code == 422
    assert neither.status_code == 422
    assert "mfa_token" in await password_step(client, enrolled.account)


async def test_turning_off_a_factor_that_is_not_on_is_a_404(client: Client, alice: Account) -> None:
    response = await remove(client, alice, code="123456")

    assert response.status_code == 404


async def test_a_factor_can_be_enrolled_again_after_turning_it_off(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    at(app, T0 + 30)
    assert (
        await remove(client, enrolled.account, code=enrolled.totp.at(T0 + 30))
    ).status_code == 204

    again = await enrol(app, client, enrolled.account)

    assert again.totp.secret != enrolled.totp.secret
    assert set(again.recovery_codes).isdisjoint(enrolled.recovery_codes)


async def test_deleting_the_account_removes_its_factor(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    assert (await client.delete("/me", headers=enrolled.account.headers)).status_code == 204

    async with services(app).db.read() as db:
        assert await db.first(select(TotpFactor)) is None


async def test_a_code_of_a_replaced_enrolment_confirms_nothing(
    app: Quart, client: Client, alice: Account
) -> None:
    """Starting again replaces the waiting secret: the old secret's code no longer counts."""
    at(app, T0)
    old = (await (await start(client, alice)).get_json())["secret"]
    new = (await (await start(client, alice)).get_json())["secret"]

    stale = await client.post(
        "/me/mfa/totp/confirm", json={"code": pyotp.TOTP(old).at(T0)}, headers=alice.headers
    )
    fresh = await client.post(
        "/me/mfa/totp/confirm", json={"code": pyotp.TOTP(new).at(T0)}, headers=alice.headers
    )

    assert stale.status_code == 422
    assert fresh.status_code == 200
