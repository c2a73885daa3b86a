"""Helpers of the second-factor tests: enrol an account as its owner would, and log in with
both steps.

Codes come from a real TOTP clock: the service's ``Totp.clock`` is set to a chosen instant
and the test computes the code of that instant with ``pyotp`` from the secret the enrolment
answer handed out, as an authenticator app would.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import pyotp
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.security.tokens.mfa import MfaTokens
from service.services import services
from tests.helpers import Account

#: An instant in the middle of a 30-second step, so that +-1 step is unambiguous.
T0 = (int(time.time()) // 30) * 30 + 15


@dataclass
class Enrolled:
    """An account with its factor on, as its owner holds it."""

    account: Account
    totp: pyotp.TOTP
    recovery_codes: list[str]


def at(app: Quart, instant: float) -> None:
    """Set the service's TOTP clock."""
    services(app).totp.clock = lambda: instant


async def start(client: Client, account: Account) -> Any:
    return await client.post(
        "/me/mfa/totp", json={"current_password": account.password}, headers=account.headers
    )


async def enrol(app: Quart, client: Client, account: Account) -> Enrolled:
    at(app, T0)
    response = await start(client, account)
    assert response.status_code == 200, await response.get_data(as_text=True)
    totp = pyotp.parse_uri((await response.get_json())["otpauth_uri"])
    assert isinstance(totp, pyotp.TOTP)
    confirmed = await client.post(
        "/me/mfa/totp/confirm", json={"code": totp.at(T0)}, headers=account.headers
    )
    assert confirmed.status_code == 200, await confirmed.get_data(as_text=True)
    return Enrolled(account, totp, (await confirmed.get_json())["recovery_codes"])


async def password_step(client: Client, account: Account, **fields: str) -> Any:
    response = await client.post(
        "/login", form={"username": account.username, "password": account.password, **fields}
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


async def mfa_token(client: Client, account: Account) -> str:
    body = await password_step(client, account)
    assert body["mfa_required"] is True
    token: str = body["mfa_token"]
    return token


async def second_step(client: Client, token: str, **proof: str) -> Any:
    return await client.post("/login/mfa", json={"mfa_token": token, **proof})


async def remove(client: Client, account: Account, **body: str) -> Any:
    """Turn the factor off with the account's password and ``body`` (a code or recovery code)."""
    return await client.delete(
        "/me/mfa/totp",
        json={"current_password": account.password, **body},
        headers=account.headers,
    )


def expired_mfa_token(app: Quart, user_id: str) -> str:
    """A token of the service's own kind, signed with its key, that expired a minute ago."""
    service = services(app)
    return (
        MfaTokens(
            keys=service.tokens.keys,
            issuer=service.settings.jwt_issuer,
            audience=service.settings.jwt_audience,
            ttl=60,
            clock=lambda: time.time() - 120,
        )
        .issue(uuid.UUID(user_id))
        .value
    )
