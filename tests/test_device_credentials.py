"""Device credentials (OWASP's device cookies): no lockout of the real owner.

Every login hands out a device credential, as the ``__Host-device`` cookie and as
``device_token`` in the body. A later login that presents it, as the cookie or as a
``device_token`` body field, counts its failures on that credential instead of on the
username-wide counter. Each client below is its own test client with its own cookie jar, the
way each browser keeps its own cookies; the attacker's keeps none.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from service.security.tokens.device import DeviceCredentials
from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP
from service.security.tokens.verification import TokenError
from service.services import services
from tests.helpers import AppFactory, app_factory

PASSWORD = "s3cret-passw0rd"
WRONG = "wrong-passw0rd"
OWNER = "198.51.100.7"
ATTACKER = "203.0.113.66"
#: The defaults of the failure limits (10 per username, 30 per address, 10 per device), no
#: request limit.
LIMITS: dict[str, Any] = {"auth_requests_per_minute": 0, "login_failure_window": 60}


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    async with app_factory(database_url, LIMITS) as build:
        yield build


async def login(
    client: Client,
    username: str,
    password: str,
    *,
    address: str = ATTACKER,
    device_token: str | None = None,
    encoding: str = "form",
) -> Any:
    fields = {"username": username, "password": password}
    if device_token is not None:
        fields["device_token"] = device_token
    body: dict[str, Any] = {"json": fields} if encoding == "json" else {"form": fields}
    return await client.post("/login", scope_base={"client": (address, 40000)}, **body)


async def sign_up(client: Client, username: str) -> None:
    response = await client.post("/signup", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201


async def device_of(client: Client, username: str, address: str = OWNER) -> str:
    """Log ``client`` in (its cookie jar keeps the cookie); the ``device_token`` it got."""
    response = await login(client, username, PASSWORD, address=address)
    assert response.status_code == 200, await response.get_data(as_text=True)
    token: str = (await response.get_json())["device_token"]
    return token


async def fail(client: Client, username: str, times: int, **kwargs: Any) -> list[int]:
    """``times`` wrong passwords; the statuses they got."""
    return [(await login(client, username, WRONG, **kwargs)).status_code for _ in range(times)]


def assert_limited(response: Any) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1


# --- issuing --------------------------------------------------------------------------------


async def test_a_login_sets_the_device_cookie_and_returns_the_same_credential(
    make_app: AppFactory,
) -> None:
    client = (await make_app()).test_client()
    await sign_up(client, "alice")

    response = await login(client, "alice", PASSWORD, address=OWNER)

    body = await response.get_json()
    cookie = response.headers["Set-Cookie"]
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    assert name_value == f"__Host-device={body['device_token']}"
    assert {a.lower() for a in attributes} >= {"secure", "httponly", "samesite=strict", "path=/"}
    assert f"Max-Age={30 * 24 * 3600}" in attributes
    assert not any(a.lower().startswith("domain") for a in attributes)
    assert response.headers["Cache-Control"] == "no-store"


async def test_development_over_plain_http_uses_a_cookie_without_secure(
    make_app: AppFactory,
) -> None:
    client = (await make_app(app_env="development")).test_client()
    await sign_up(client, "alice")

    plain = await login(client, "alice", PASSWORD, address=OWNER)
    https = await client.post(
        "/login", form={"username": "alice", "password": PASSWORD}, scheme="https"
    )

    assert plain.headers["Set-Cookie"].startswith("device=")
    assert "secure" not in plain.headers["Set-Cookie"].lower()
    assert https.headers["Set-Cookie"].startswith("__Host-device=")
    assert "Secure" in https.headers["Set-Cookie"]


async def test_in_development_the_plain_cookie_is_read_back(make_app: AppFactory) -> None:
    app = await make_app(app_env="development")
    owner, attacker = app.test_client(), app.test_client(use_cookies=False)
    await sign_up(owner, "alice")
    await device_of(owner, "alice")
    await fail(attacker, "alice", 10)

    assert_limited(await login(attacker, "alice", PASSWORD))
    assert (await login(owner, "alice", PASSWORD, address=OWNER)).status_code == 200


async def test_a_device_credential_is_no_access_or_refresh_token(make_app: AppFactory) -> None:
    client = (await make_app()).test_client()
    await sign_up(client, "alice")
    device = await device_of(client, "alice")

    me = await client.get("/me", headers={"Authorization": f"Bearer {device}"})
    refresh = await client.post("/refresh", json={"refresh_token": device})

    assert me.status_code == 401
    assert refresh.status_code == 400


async def test_the_credential_kinds_never_pass_for_each_other(make_app: AppFactory) -> None:
    service = services(await make_app())
    device = service.devices.issue(uuid.uuid4()).value
    access = service.tokens.issue(
        ACCESS_TYP,
        user_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        ttl=60,
        not_after=int(time.time()) + 60,
    ).value

    for typ in (ACCESS_TYP, REFRESH_TYP):
        with pytest.raises(TokenError, match="wrong token type"):
            service.tokens.verify(device, typ)
    with pytest.raises(TokenError, match="wrong token type"):
        service.devices.verify(access)
    assert service.devices.verify(device).device_id


# --- the owner is not locked out ------------------------------------------------------------


async def test_after_twelve_failures_elsewhere_the_owner_with_the_cookie_logs_in(
    make_app: AppFactory,
) -> None:
    app = await make_app()
    owner = app.test_client()
    attacker = app.test_client(use_cookies=False)
    await sign_up(owner, "alice")
    await device_of(owner, "alice")

    statuses = await fail(attacker, "alice", 12)

    assert statuses == [400] * 10 + [429] * 2
    assert (await login(owner, "alice", PASSWORD, address=OWNER)).status_code == 200
    # Without the credential the owner is an unknown client like any other.
    assert_limited(await login(attacker, "alice", PASSWORD, address=OWNER))


@pytest.mark.parametrize("encoding", ["form", "json"])
async def test_after_twelve_failures_the_owner_with_the_device_token_field_logs_in(
    make_app: AppFactory, encoding: str
) -> None:
    app = await make_app()
    client = app.test_client(use_cookies=False)
    await sign_up(client, "alice")
    device = await device_of(client, "alice")
    await fail(client, "alice", 12)

    response = await login(
        client, "alice", PASSWORD, address=OWNER, device_token=device, encoding=encoding
    )

    assert response.status_code == 200
    assert_limited(await login(client, "alice", PASSWORD, address=OWNER, encoding=encoding))


async def test_the_owners_own_typos_count_on_the_device(make_app: AppFactory) -> None:
    app = await make_app(login_failures_per_device=3)
    client, stranger = app.test_client(), app.test_client(use_cookies=False)
    await sign_up(client, "alice")
    await device_of(client, "alice")

    assert await fail(client, "alice", 4, address=OWNER) == [400, 400, 400, 429]
    # They did not touch the username-wide counter: other clients are not locked out.
    assert (await login(stranger, "alice", PASSWORD)).status_code == 200


# --- a stolen credential --------------------------------------------------------------------


async def test_a_stolen_credential_is_limited_on_that_credential_only(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    app = await make_app(login_failures_per_device=3)
    laptop, phone = app.test_client(use_cookies=False), app.test_client(use_cookies=False)
    attacker = app.test_client(use_cookies=False)
    await sign_up(laptop, "alice")
    stolen = await device_of(laptop, "alice")
    phones = await device_of(phone, "alice")

    statuses = await fail(attacker, "alice", 3, device_token=stolen)
    limited = await login(attacker, "alice", WRONG, device_token=stolen)

    assert statuses == [400] * 3
    assert_limited(limited)
    assert_limited(await login(attacker, "alice", PASSWORD, device_token=stolen))
    # The owner's other device, and unknown clients, are unaffected.
    assert (await login(phone, "alice", PASSWORD, device_token=phones)).status_code == 200
    assert (await login(laptop, "alice", PASSWORD, address=OWNER)).status_code == 200

    event = next(r for r in security_events if r.getMessage().startswith("rate_limited"))
    assert event.limit == "device"  # type: ignore[attr-defined]
    assert event.device  # type: ignore[attr-defined]
    assert event.client_address == ATTACKER  # type: ignore[attr-defined]
    logged = " ".join(str(value) for record in security_events for value in vars(record).values())
    assert stolen not in logged
    assert phones not in logged


async def test_a_known_device_still_counts_on_the_address_limit(make_app: AppFactory) -> None:
    app = await make_app(login_failures_per_address=3)
    client = app.test_client(use_cookies=False)
    await sign_up(client, "alice")
    device = await device_of(client, "alice")

    assert await fail(client, "alice", 4, device_token=device) == [400, 400, 400, 429]


# --- what counts as no credential -----------------------------------------------------------


def _forged(token: str) -> str:
    head, claims, signature = token.split(".")
    return f"{head}.{claims}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"


async def test_forged_expired_and_other_tokens_count_as_no_credential(
    make_app: AppFactory, security_events: list[logging.LogRecord]
) -> None:
    app = await make_app(log_level="INFO")  # ``device_credential_refused`` is an INFO event
    client = app.test_client(use_cookies=False)
    await sign_up(client, "alice")
    login_body = await (await login(client, "alice", PASSWORD, address=OWNER)).get_json()
    user_id = (
        await (
            await client.get(
                "/me", headers={"Authorization": f"Bearer {login_body['access_token']}"}
            )
        ).get_json()
    )["id"]
    stale = DeviceCredentials(
        keys=services(app).tokens.keys,
        issuer="service",
        audience="service-api",
        ttl=3600,
        clock=lambda: time.time() - 7200,
    )
    expired = stale.issue(uuid.UUID(user_id)).value
    await fail(client, "alice", 10)

    for presented in (
        _forged(login_body["device_token"]),
        expired,
        login_body["access_token"],
        login_body["refresh_token"],
        "not-a-token",
    ):
        assert_limited(
            await login(client, "alice", PASSWORD, address=OWNER, device_token=presented)
        )
    refused = [r for r in security_events if r.getMessage().startswith("device_credential")]
    assert len(refused) == 5
    limits = {
        r.limit  # type: ignore[attr-defined]
        for r in security_events
        if r.getMessage().startswith("rate_limited")
    }
    assert limits == {"username"}


async def test_a_forged_or_foreign_cookie_counts_as_no_credential(make_app: AppFactory) -> None:
    app = await make_app()
    client = app.test_client(use_cookies=False)
    await sign_up(client, "alice")
    await sign_up(client, "bob")
    alices, bobs = await device_of(client, "alice"), await device_of(client, "bob")
    await fail(client, "alice", 10)

    for presented in (_forged(alices), bobs):
        browser = app.test_client()
        browser.set_cookie("localhost", "__Host-device", presented, secure=True, httponly=True)
        assert_limited(await login(browser, "alice", PASSWORD, address=OWNER))
    browser = app.test_client()
    browser.set_cookie("localhost", "__Host-device", alices, secure=True, httponly=True)
    assert (await login(browser, "alice", PASSWORD, address=OWNER)).status_code == 200


async def test_a_credential_of_another_account_is_no_credential(make_app: AppFactory) -> None:
    app = await make_app(login_failures_per_device=3)
    client = app.test_client(use_cookies=False)
    await sign_up(client, "alice")
    await sign_up(client, "bob")
    bobs = await device_of(client, "bob")

    # Failures for alice with bob's credential count on alice's username, not on bob's device.
    assert await fail(client, "alice", 11, device_token=bobs) == [400] * 10 + [429]
    assert_limited(await login(client, "alice", PASSWORD, address=OWNER, device_token=bobs))
    assert (await login(client, "bob", PASSWORD, device_token=bobs)).status_code == 200


async def test_a_credential_for_a_username_without_an_account_is_no_credential(
    make_app: AppFactory,
) -> None:
    client = (await make_app()).test_client(use_cookies=False)
    await sign_up(client, "alice")
    alices = await device_of(client, "alice")

    assert await fail(client, "nobody", 11, device_token=alices) == [400] * 10 + [429]
