"""A pending ``mfa_token`` is bound to the password and the factor it was issued under, as a reset
link is bound to its password: once either changes, or the account is disabled, the token is
refused exactly as an expired one, before any code is checked, counted or spent.

The attacker in these tests got an ``mfa_token`` with the password, then the owner (or an
admin) acted: the token must not outlive that.
"""

from __future__ import annotations

import uuid

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.admin import actions
from service.config import Settings
from service.services import services
from tests.email_helpers import NEW_PASSWORD, link_token, sign_up_verified
from tests.helpers import Account, make_settings
from tests.mailbox import Mailbox, mail_settings
from tests.mfa_helpers import (
    T0,
    Enrolled,
    at,
    enrol,
    expired_mfa_token,
    mfa_token,
    remove,
    second_step,
)
from tests.smtp_server import SmtpServer

RESET = "/password/reset"


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    """The app mails reset links to the test's SMTP server."""
    return make_settings(database_url, **mail_settings(smtp_server))


@pytest.fixture
async def enrolled(app: Quart, client: Client, mailbox: Mailbox) -> Enrolled:
    # Verified: a reset link goes only to a verified address.
    account = await sign_up_verified(client, mailbox, "alice", "alice@example.com")
    return await enrol(app, client, account)


async def refused_as_expired(app: Quart, client: Client, stale: str, **proof: str) -> None:
    """``stale`` with ``proof`` gets the very answer an expired token gets with it."""
    expired = await second_step(client, expired_mfa_token(app, _owner(app, stale)), **proof)
    response = await second_step(client, stale, **proof)

    assert response.status_code == expired.status_code == 400
    assert response.mimetype == expired.mimetype == "application/problem+json"
    assert await response.get_json() == await expired.get_json()
    assert (await response.get_json())["error"] == "invalid_grant"


def _owner(app: Quart, token: str) -> str:
    return str(services(app).mfa_tokens.verify(token).user_id)


async def recovery_codes_left(client: Client, account: Account) -> int:
    status = await client.get("/me/mfa/totp", headers=account.headers)
    left: int = (await status.get_json())["recovery_codes_left"]
    return left


async def test_a_token_from_before_a_password_change_is_refused(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    account = enrolled.account
    stale = await mfa_token(client, account)
    changed = await client.post(
        "/me/password",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )
    assert changed.status_code == 204

    await refused_as_expired(app, client, stale, recovery_code=enrolled.recovery_codes[0])
    assert await recovery_codes_left(client, account) == 10


async def test_a_token_from_before_a_password_reset_is_refused(
    app: Quart, client: Client, enrolled: Enrolled, mailbox: Mailbox
) -> None:
    stale = await mfa_token(client, enrolled.account)
    assert (
        await client.post("/password/forgot", json={"email": "alice@example.com"})
    ).status_code == 202
    token = link_token(await mailbox.next("alice@example.com", containing=RESET), RESET)
    reset = await client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD})
    assert reset.status_code == 204

    await refused_as_expired(app, client, stale, recovery_code=enrolled.recovery_codes[0])


async def test_a_token_from_before_the_factor_was_turned_off_is_refused(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    stale = await mfa_token(client, enrolled.account)
    at(app, T0 + 30)
    assert (
        await remove(client, enrolled.account, code=enrolled.totp.at(T0 + 30))
    ).status_code == 204
    at(app, T0 + 60)

    await refused_as_expired(app, client, stale, code=enrolled.totp.at(T0 + 60))


async def test_a_token_from_before_the_factor_was_turned_on_again_is_refused(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    """Off and on again with a new authenticator: the old token must not finish a login with
    the new factor's code."""
    stale = await mfa_token(client, enrolled.account)
    at(app, T0 + 30)
    assert (
        await remove(client, enrolled.account, recovery_code=enrolled.recovery_codes[0])
    ).status_code == 204
    again = await enrol(app, client, enrolled.account)
    at(app, T0 + 30)

    await refused_as_expired(app, client, stale, code=again.totp.at(T0 + 30))
    fresh = await mfa_token(client, enrolled.account)
    assert (await second_step(client, fresh, code=again.totp.at(T0 + 30))).status_code == 200


async def test_a_token_of_an_account_disabled_since_is_refused(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    stale = await mfa_token(client, enrolled.account)
    operator = actions.Actor(name="test-operator")
    await actions.change_user(
        services(app), operator, uuid.UUID(enrolled.account.id), is_active=False
    )
    at(app, T0 + 30)

    await refused_as_expired(app, client, stale, code=enrolled.totp.at(T0 + 30))
    await actions.change_user(
        services(app), operator, uuid.UUID(enrolled.account.id), is_active=True
    )
    fresh = await mfa_token(client, enrolled.account)
    assert (await second_step(client, fresh, code=enrolled.totp.at(T0 + 30))).status_code == 200


async def test_a_login_on_another_device_leaves_a_pending_token_usable(
    app: Quart, client: Client, enrolled: Enrolled
) -> None:
    """The binding is the password and the factor, not the factor's last used code."""
    pending = await mfa_token(client, enrolled.account)
    at(app, T0 + 30)
    other = await second_step(
        client, await mfa_token(client, enrolled.account), code=enrolled.totp.at(T0 + 30)
    )
    assert other.status_code == 200
    at(app, T0 + 60)

    response = await second_step(client, pending, code=enrolled.totp.at(T0 + 60))

    assert response.status_code == 200
