"""Key rotation without logging anybody out, and the JWKS endpoint that publishes the keys.

The rotation follows the procedure of docs/keys.md with several app instances
on one database, as a rolling deploy would: (1) the new key is added as verify-only, (2) it
signs and the old one only verifies, (3) the old one is removed. Sessions started before the
rotation survive it by refreshing; tokens signed by the removed key stop working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from quart.typing import TestClientProtocol as Client

from service import create_app
from service.config import Settings
from service.security.keys import PRIVATE_JWK_MEMBERS
from tests.helpers import Account, log_in, make_settings, sign_up
from tests.signing import (
    ASYMMETRIC,
    SigningKey,
    header_of,
    key_settings,
    private_pem,
    public_jwk,
    thumbprint,
)

JWKS = "/.well-known/jwks.json"


# The conftest ``key_pool`` per algorithm: the old key, the new key, and a third for the JWKS
# tests.


@pytest.fixture
def old_key(key_pool: dict[str, list[SigningKey]], algorithm: str) -> SigningKey:
    return key_pool[algorithm][0]


@pytest.fixture
def new_key_(key_pool: dict[str, list[SigningKey]], algorithm: str) -> SigningKey:
    return key_pool[algorithm][1]


@pytest.fixture
def settings(database_url: str, algorithm: str, old_key: SigningKey) -> Settings:
    """Before the rotation: the old key signs (the conftest ``app`` and ``client``)."""
    return make_settings(database_url, **key_settings(algorithm, old_key))


@asynccontextmanager
async def instance(settings: Settings) -> AsyncIterator[Client]:
    """Another instance of the service on the same database (rows are kept)."""
    app = create_app(settings)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def me(client: Client, access_token: str) -> int:
    response = await client.get("/me", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


async def refresh(client: Client, refresh_token: str) -> tuple[int, dict[str, Any]]:
    response = await client.post("/refresh", json={"refresh_token": refresh_token})
    body: dict[str, Any] = await response.get_json()
    return response.status_code, body


async def published_kids(client: Client) -> list[str]:
    response = await client.get(JWKS)
    assert response.status_code == 200
    return [key["kid"] for key in (await response.get_json())["keys"]]


async def test_rotation_keeps_every_session_alive_and_retires_the_old_key(
    client: Client,
    database_url: str,
    algorithm: str,
    old_key: SigningKey,
    new_key_: SigningKey,
) -> None:
    alice = await sign_up(client, "alice")  # refreshes during the rotation
    bob = await sign_up(client, "bob")  # idle until after it
    old_kid, new_kid = thumbprint(old_key), thumbprint(new_key_)
    asymmetric = algorithm in ASYMMETRIC

    # 1. Publish: the new key verifies everywhere before any instance signs with it.
    publish = make_settings(database_url, **key_settings(algorithm, old_key, (new_key_,)))
    async with instance(publish) as step1:
        assert await me(step1, alice.access_token) == 200
        status, pair = await refresh(step1, alice.refresh_token)
        assert status == 200
        assert header_of(pair["access_token"])["kid"] == old_kid
        assert await published_kids(step1) == ([old_kid, new_kid] if asymmetric else [])
        alice.access_token, alice.refresh_token = pair["access_token"], pair["refresh_token"]

    # 2. Switch: the new key signs; tokens of the old one still work, nobody is logged out.
    switch = make_settings(database_url, **key_settings(algorithm, new_key_, (old_key,)))
    async with instance(switch) as step2:
        assert await me(step2, alice.access_token) == 200
        assert await me(step2, bob.access_token) == 200
        status, pair = await refresh(step2, alice.refresh_token)
        assert status == 200
        assert header_of(pair["access_token"])["kid"] == new_kid
        assert header_of(pair["refresh_token"])["kid"] == new_kid
        assert await published_kids(step2) == ([new_kid, old_kid] if asymmetric else [])
        old_access = alice.access_token
        alice.access_token, alice.refresh_token = pair["access_token"], pair["refresh_token"]
        # An instance still on step 1 accepts what step 2 issues: why step 1 comes first.
        async with instance(publish) as laggard:
            assert await me(laggard, alice.access_token) == 200

    # 3. Retire: the old key is gone; what it signed is refused, what the new one signed works.
    retire = make_settings(database_url, **key_settings(algorithm, new_key_))
    async with instance(retire) as step3:
        assert await me(step3, old_access) == 401
        assert await me(step3, bob.access_token) == 401
        status, body = await refresh(step3, bob.refresh_token)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert await me(step3, alice.access_token) == 200
        status, pair = await refresh(step3, alice.refresh_token)
        assert status == 200
        assert await published_kids(step3) == ([new_kid] if asymmetric else [])
        # bob has to log in again; his new tokens are signed by the new key.
        tokens = await log_in(step3, "bob", bob.password)
        assert header_of(tokens["access_token"])["kid"] == new_kid


async def test_switching_the_signing_key_without_keeping_the_old_one_ends_sessions(
    client: Client, alice: Account, database_url: str, algorithm: str, new_key_: SigningKey
) -> None:
    """The emergency rotation (a leaked key): every token of the old key is refused at once."""
    replaced = make_settings(database_url, **key_settings(algorithm, new_key_))
    async with instance(replaced) as after:
        assert await me(after, alice.access_token) == 401
        status, _ = await refresh(after, alice.refresh_token)
        assert status == 400


# --- the JWKS endpoint ---------------------------------------------------------------------


async def test_jwks_lists_exactly_the_configured_public_keys(
    database_url: str, algorithm: str, key_pool: dict[str, list[SigningKey]]
) -> None:
    signing, *verify_only = key_pool[algorithm]
    configured = make_settings(database_url, **key_settings(algorithm, signing, tuple(verify_only)))
    async with instance(configured) as client:
        response = await client.get(JWKS)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    keys = (await response.get_json())["keys"]
    if algorithm == "HS256":
        assert keys == [], "an HMAC key is a secret: nothing to publish"
        return
    expected = [signing, *verify_only]
    assert [key["kid"] for key in keys] == [thumbprint(key) for key in expected]
    for published, key in zip(keys, expected, strict=True):
        assert published == {
            **public_jwk(key),
            "kid": thumbprint(key),
            "alg": algorithm,
            "use": "sig",
        }


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_jwks_never_publishes_private_material(
    database_url: str, algorithm: str, key_pool: dict[str, list[SigningKey]]
) -> None:
    """Even when the verify-only keys are given as private keys, only public halves go out."""
    signing, *verify_only = key_pool[algorithm]
    values = key_settings(algorithm, signing)
    values["jwt_verify_keys"] = "\n".join(private_pem(key) for key in verify_only)  # type: ignore[arg-type]
    async with instance(make_settings(database_url, **values)) as client:
        response = await client.get(JWKS)
    text = await response.get_data(as_text=True)
    keys = (await response.get_json())["keys"]
    assert len(keys) == 3
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & key.keys()
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & key.keys()
        assert key["use"] == "sig"
    assert "PRIVATE" not in text


async def test_jwks_is_cacheable_and_public(client: Client) -> None:
    response = await client.get(JWKS)
    cache_control = response.headers["Cache-Control"]
    assert "public" in cache_control
    assert "max-age=300" in cache_control
    assert "Authorization" not in response.headers.get("Vary", "")


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_the_published_keys_verify_the_service_tokens(
    client: Client, alice: Account, algorithm: str
) -> None:
    """What a resource server would do: fetch the JWK Set, pick the key by kid, verify."""
    key_set = KeySet.import_key_set(await (await client.get(JWKS)).get_json())
    token = jwt.decode(alice.access_token, key_set, algorithms=[algorithm])
    assert token.claims["sub"] == alice.id


@pytest.mark.parametrize("algorithm", ["HS256"])
async def test_the_jwks_route_is_documented_with_its_schema(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    operation = spec["paths"][JWKS]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["title"] == "JwkSet"
    variants = schema["properties"]["keys"]["items"]["discriminator"]["mapping"]
    assert set(variants) == {"RSA", "EC", "OKP"}
    for kty, ref in variants.items():
        members = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
        assert {"kty", "kid", "alg", "use"} <= members.keys(), kty
        assert not PRIVATE_JWK_MEMBERS & members.keys(), kty
    assert "security" not in operation or operation["security"] == []
