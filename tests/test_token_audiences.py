"""Each kind of token names its own audience, so a verifier that never reads ``typ`` cannot
confuse them (RFC 8725 section 3.12), and tokens issued with the old shared audience keep
working through the transition (``service/security/tokens/audiences.py``).

The naive verifier below is what many resource servers run (PyJWT's defaults): the signature
against the published JWKS, ``iss``, ``aud`` and the times, nothing else. Before the change
it took a refresh token and a 30-day device credential for access tokens.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.app import create_app
from service.config import ConfigurationError, Settings
from service.security import keys
from service.security.tokens import audiences
from service.security.tokens.device import DeviceCredentials
from service.security.tokens.mfa import MfaTokens
from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP, TokenService
from service.security.tokens.verification import TokenError
from service.services import services
from tests.helpers import TEST_SECRET, Account, make_settings
from tests.signing import SigningKey, claims_of, header_of, key_settings, sign

ALGORITHM = "ES256"
BASE = "https://api.example.test"
ISSUER = "https://issuer.example.test"
ACCESS_AUDIENCE = "https://items.example.test"
#: The token endpoint as the metadata publishes it: the audience of the service's own tokens.
TOKEN_ENDPOINT = f"{BASE}/login"
PASSWORD = "s3cret-passw0rd"


@pytest.fixture
def key(key_pool: dict[str, list[SigningKey]]) -> SigningKey:
    return key_pool[ALGORITHM][0]


@pytest.fixture
def settings(database_url: str, key: SigningKey) -> Settings:
    return make_settings(
        database_url,
        public_base_url=BASE,
        jwt_issuer=ISSUER,
        jwt_audience=ACCESS_AUDIENCE,
        **key_settings(ALGORITHM, key),
    )


async def naive_verifier(client: Client) -> Any:
    """A resource server's check with joserfc, as PyJWT does it by default: the signature
    (by the JWKS), ``iss``, ``aud`` and the times; ``typ`` is never read."""
    jwks = KeySet.import_key_set(await (await client.get("/.well-known/jwks.json")).get_json())
    claims = JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": ACCESS_AUDIENCE},
        exp={"essential": True},
    )

    def verify(token: str) -> dict[str, Any]:
        decoded = jwt.decode(token, jwks, algorithms=[ALGORITHM])
        claims.validate(decoded.claims)
        verified: dict[str, Any] = decoded.claims
        return verified

    return verify


async def login(client: Client, username: str, **fields: str) -> dict[str, Any]:
    response = await client.post(
        "/login", form={"username": username, "password": PASSWORD, **fields}
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    body: dict[str, Any] = await response.get_json()
    return body


def with_old_audience(token: str, key: SigningKey) -> str:
    """``token`` as the previous release issued it: the same claims, ``aud`` the access one."""
    return sign(header_of(token), {**claims_of(token), "aud": ACCESS_AUDIENCE}, key, ALGORITHM)


# --- a verifier that checks only signature, iss and aud -------------------------------------


async def test_a_naive_verifier_accepts_access_tokens_and_refuses_every_other_kind(
    app: Quart, client: Client, alice: Account
) -> None:
    verify = await naive_verifier(client)
    tokens = await login(client, alice.username)
    mfa_token = services(app).mfa_tokens.issue(uuid.UUID(alice.id)).value

    assert verify(tokens["access_token"])["sub"] == alice.id
    for name in ("refresh_token", "device_token"):
        with pytest.raises(JoseError, match="aud"):
            verify(tokens[name])
    with pytest.raises(JoseError, match="aud"):
        verify(mfa_token)


async def test_the_service_s_own_tokens_name_the_published_token_endpoint(
    app: Quart, client: Client, alice: Account
) -> None:
    metadata = await (await client.get("/.well-known/oauth-authorization-server")).get_json()
    tokens = await login(client, alice.username)
    mfa_token = services(app).mfa_tokens.issue(uuid.UUID(alice.id)).value

    assert metadata["token_endpoint"] == TOKEN_ENDPOINT
    assert claims_of(tokens["access_token"])["aud"] == ACCESS_AUDIENCE
    for token in (tokens["refresh_token"], tokens["device_token"], mfa_token):
        assert claims_of(token)["aud"] == TOKEN_ENDPOINT
    # The service verifies its tokens with the new audience.
    refreshed = await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200


async def test_an_access_token_with_the_token_endpoint_audience_is_refused(
    client: Client, alice: Account, key: SigningKey
) -> None:
    """The access rule accepts ``JWT_AUDIENCE`` only: no transition on that side."""
    relabelled = sign(
        header_of(alice.access_token),
        {**claims_of(alice.access_token), "aud": TOKEN_ENDPOINT},
        key,
        ALGORITHM,
    )
    response = await client.get("/me", headers={"Authorization": f"Bearer {relabelled}"})
    assert response.status_code == 401


# --- the transition: tokens with the old audience -------------------------------------------


@pytest.mark.parametrize(
    ("path", "grant"), [("/refresh", {}), ("/login", {"grant_type": "refresh_token"})]
)
async def test_an_old_audience_refresh_token_refreshes_once_into_the_new_audience(
    client: Client, alice: Account, key: SigningKey, path: str, grant: dict[str, str]
) -> None:
    old = with_old_audience(alice.refresh_token, key)

    response = await client.post(path, form={"refresh_token": old, **grant})

    assert response.status_code == 200, await response.get_data(as_text=True)
    successor = (await response.get_json())["refresh_token"]
    assert claims_of(successor)["aud"] == TOKEN_ENDPOINT
    # It was spent like any refresh token: presented again, it is reuse and ends the session.
    again = await client.post("/refresh", json={"refresh_token": old})
    assert again.status_code == 400
    assert (await again.get_json())["error"] == "invalid_grant"
    assert (await client.post("/refresh", json={"refresh_token": successor})).status_code == 400


async def test_an_old_audience_device_credential_still_counts_at_login(
    app: Quart, alice: Account, key: SigningKey
) -> None:
    """A known device logs in while strangers' failures lock the username (docs/security.md)."""
    owner, attacker = app.test_client(use_cookies=False), app.test_client(use_cookies=False)
    owner_device = with_old_audience((await login(owner, alice.username))["device_token"], key)
    for _ in range(10):
        wrong = {"username": alice.username, "password": "wrong-passw0rd"}
        assert (await attacker.post("/login", form=wrong)).status_code == 400

    refused = await owner.post("/login", form={"username": alice.username, "password": PASSWORD})
    known = await owner.post(
        "/login",
        form={"username": alice.username, "password": PASSWORD, "device_token": owner_device},
    )

    assert refused.status_code == 429  # the username is locked for unknown clients
    assert known.status_code == 200, await known.get_data(as_text=True)
    assert claims_of((await known.get_json())["device_token"])["aud"] == TOKEN_ENDPOINT


async def test_an_old_audience_token_is_still_no_access_token(
    client: Client, alice: Account, key: SigningKey
) -> None:
    old = with_old_audience(alice.refresh_token, key)
    response = await client.get("/me", headers={"Authorization": f"Bearer {old}"})
    assert response.status_code == 401


# --- the rules on their own -----------------------------------------------------------------

T0 = 1_800_000_000
USER = uuid.UUID(int=7)


def hmac_keys() -> keys.KeySet:
    return keys.hmac_key_set(TEST_SECRET, [])


def test_the_audience_is_the_token_endpoint_or_the_issuer_s_token_path() -> None:
    assert audiences.token_endpoint_audience(BASE, ISSUER) == f"{BASE}/login"
    assert audiences.token_endpoint_audience(None, "https://id.example/") == (
        "https://id.example/login"
    )
    assert audiences.token_endpoint_audience(None, "service") == "service/login"


def test_each_kind_accepts_the_old_audience_only_through_the_legacy_list() -> None:
    old_device = DeviceCredentials(
        keys=hmac_keys(), issuer=ISSUER, audience=ACCESS_AUDIENCE, ttl=3600
    ).issue(USER)
    old_mfa = MfaTokens(keys=hmac_keys(), issuer=ISSUER, audience=ACCESS_AUDIENCE, ttl=300).issue(
        USER
    )
    legacy = audiences.legacy_audiences(ACCESS_AUDIENCE)
    assert legacy == (ACCESS_AUDIENCE,)

    for legacy_audiences, accepted in ((legacy, True), ((), False)):
        devices = DeviceCredentials(
            keys=hmac_keys(),
            issuer=ISSUER,
            audience=TOKEN_ENDPOINT,
            ttl=3600,
            legacy_audiences=legacy_audiences,
        )
        mfa = MfaTokens(
            keys=hmac_keys(),
            issuer=ISSUER,
            audience=TOKEN_ENDPOINT,
            ttl=300,
            legacy_audiences=legacy_audiences,
        )
        if accepted:
            assert devices.verify(old_device.value).device_id == old_device.device_id
            assert mfa.verify(old_mfa.value).token_id == old_mfa.token_id
        else:
            with pytest.raises(TokenError, match="aud"):
                devices.verify(old_device.value)
            with pytest.raises(TokenError, match="aud"):
                mfa.verify(old_mfa.value)


def test_the_token_service_issues_two_audiences_and_accepts_the_old_one_on_refresh() -> None:
    service = TokenService(
        keys=hmac_keys(),
        issuer=ISSUER,
        audience=ACCESS_AUDIENCE,
        refresh_audience=TOKEN_ENDPOINT,
        clock=lambda: T0,
    )
    issued = {
        typ: service.issue(typ, user_id=USER, session_id=USER, ttl=60, not_after=T0 + 60).value
        for typ in (ACCESS_TYP, REFRESH_TYP)
    }
    assert claims_of(issued[ACCESS_TYP])["aud"] == ACCESS_AUDIENCE
    assert claims_of(issued[REFRESH_TYP])["aud"] == TOKEN_ENDPOINT

    def relabelled(typ: str, audience: str) -> str:
        claims = {**claims_of(issued[typ]), "aud": audience}
        return sign(header_of(issued[typ]), claims, TEST_SECRET, "HS256")

    assert service.verify(relabelled(REFRESH_TYP, ACCESS_AUDIENCE), REFRESH_TYP)
    with pytest.raises(TokenError, match="aud"):
        service.verify(relabelled(ACCESS_TYP, TOKEN_ENDPOINT), ACCESS_TYP)
    with pytest.raises(TokenError, match="aud"):
        service.verify(relabelled(REFRESH_TYP, "https://elsewhere.test"), REFRESH_TYP)


def test_the_token_service_defaults_to_the_issuer_s_token_path() -> None:
    service = TokenService(keys=hmac_keys(), issuer="service", audience="service-api")
    refresh = service.issue(
        REFRESH_TYP, user_id=USER, session_id=USER, ttl=60, not_after=int(time.time()) + 60
    )
    assert claims_of(refresh.value)["aud"] == "service/login"


def test_one_audience_for_both_kinds_is_refused() -> None:
    with pytest.raises(ValueError, match="JWT_AUDIENCE"):
        TokenService(keys=hmac_keys(), issuer=ISSUER, audience="a", refresh_audience="a")


@pytest.mark.parametrize(
    "overrides",
    [
        {"public_base_url": BASE, "jwt_audience": TOKEN_ENDPOINT},
        {"jwt_audience": "service/login"},  # no URL: the issuer's token path
    ],
)
def test_the_service_refuses_to_start_when_jwt_audience_is_its_token_endpoint(
    overrides: dict[str, str],
) -> None:
    with pytest.raises(ConfigurationError, match="JWT_AUDIENCE"):
        create_app(make_settings("sqlite:///:memory:", **overrides))
