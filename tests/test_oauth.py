"""The standard OAuth endpoints: server metadata (RFC 8414), revocation (RFC 7009) and
introspection (RFC 7662), on both databases.

Every rule is attacked: metadata is never built from a client's ``Host`` header; revocation
answers the same for live and dead tokens and ends the whole session; introspection refuses
callers without the configured client credentials (wrong secret, unknown client, other
schemes, malformed headers) and never reports a revoked, expired, foreign or refresh token
as active.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from typing import Any
from urllib.parse import quote_plus

import pytest
from joserfc import jwt
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.config import Settings
from service.security.keys import KeySet
from service.security.tokens.session import ACCESS_TYP, REFRESH_TYP
from service.services import services
from tests.helpers import TEST_MFA_KEY, Account, AppFactory, log_in, make_settings
from tests.signing import claims_of

BASE = "https://auth.example.com"
ISSUER = "https://auth.example.com"
CLIENT_ID = "resource-server"
CLIENT_SECRET = "rs-secret-0123456789-abcdefghij-KLMNOP"
OTHER_ID = "reports"
OTHER_SECRET = "another:secret-with-a-colon-0123456789abc"
CLIENTS = f"{CLIENT_ID}:{CLIENT_SECRET},{OTHER_ID}:{OTHER_SECRET}"
METADATA = "/.well-known/oauth-authorization-server"
OPENID = "/.well-known/openid-configuration"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, public_base_url=BASE, jwt_issuer=ISSUER, introspection_clients=CLIENTS
    )


@pytest.fixture
def events(
    security_events: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    """The security events of the test, INFO ones included."""
    caplog.set_level(logging.INFO, logger="service.security")
    return security_events


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic as RFC 6749 section 2.3.1 encodes client credentials (form-encoded first)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


RS = basic(CLIENT_ID, CLIENT_SECRET)


async def introspect(client: Client, token: str, **extra: str) -> dict[str, Any]:
    response = await client.post("/introspect", form={"token": token, **extra}, headers=RS)
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await response.get_json()
    return body


async def me(client: Client, access_token: str) -> int:
    response = await client.get("/me", headers={"Authorization": f"Bearer {access_token}"})
    return response.status_code


# --- metadata (RFC 8414) ----------------------------------------------------------------


@pytest.mark.parametrize("path", [METADATA, OPENID])
async def test_the_metadata_names_the_issuer_and_absolute_endpoints(
    client: Client, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    metadata = await response.get_json()
    assert metadata == {
        "issuer": ISSUER,
        "token_endpoint": f"{BASE}/login",
        "jwks_uri": f"{BASE}/.well-known/jwks.json",
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint": f"{BASE}/revoke",
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint": f"{BASE}/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "subject_types_supported": ["public"],
        "service_documentation": f"{BASE}/docs",
    }


async def test_the_metadata_issuer_is_the_iss_of_the_tokens(client: Client, alice: Account) -> None:
    metadata = await (await client.get(METADATA)).get_json()
    claims = claims_of(alice.access_token)
    assert claims["iss"] == metadata["issuer"]


async def test_the_metadata_never_follows_the_host_header(client: Client) -> None:
    """A client-chosen Host would poison shared caches with endpoints on another host."""
    for headers in (
        {"Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example"},
    ):
        text = await (await client.get(METADATA, headers=headers)).get_data(as_text=True)
        assert "evil" not in text


async def test_the_issuer_url_is_the_base_when_no_public_url_is_set(make_app: AppFactory) -> None:
    app = await make_app(jwt_issuer="https://api.example.org/auth")
    metadata = await (await app.test_client().get(METADATA)).get_json()
    assert metadata["issuer"] == "https://api.example.org/auth"
    assert metadata["revocation_endpoint"] == "https://api.example.org/auth/revoke"
    assert "introspection_endpoint" not in metadata, "no introspection client is configured"


async def test_without_a_known_url_the_metadata_is_a_404_naming_the_setting(
    make_app: AppFactory,
) -> None:
    app = await make_app()  # JWT_ISSUER "service" is no URL, no PUBLIC_BASE_URL
    response = await app.test_client().get(OPENID, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert "PUBLIC_BASE_URL" in (await response.get_json())["detail"]


@pytest.mark.parametrize(
    "value",
    [
        "api.example.com",
        "ftp://api.example.com",
        "https://user:pw@api.example.com",
        "https://api.example.com/?x=1",
        "https://api.example.com/#top",
        "https://",
        "https://api.example.com:99999",
    ],
)
def test_a_public_base_url_that_is_no_absolute_url_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"public_base_url\n.*absolute http"):
        Settings(_env_file=None, public_base_url=value)


def test_production_needs_https_except_on_loopback() -> None:
    secret = "production-secret-that-is-long-enough-0123456789"
    with pytest.raises(ValueError, match="https"):
        Settings(
            _env_file=None,
            app_env="production",
            secret_key=secret,
            mfa_encryption_key=TEST_MFA_KEY,
            public_base_url="http://a.b",
        )
    local = Settings(
        _env_file=None,
        app_env="production",
        secret_key=secret,
        mfa_encryption_key=TEST_MFA_KEY,
        database_url="postgresql://db.invalid/service",
        public_base_url="http://127.0.0.1:8000/",
    )
    assert local.public_base_url == "http://127.0.0.1:8000"


# --- revocation (RFC 7009) --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "something_else"])
async def test_revoking_either_token_ends_the_whole_session(
    client: Client,
    alice: Account,
    kind: str,
    hint: str | None,
    events: list[logging.LogRecord],
) -> None:
    """Whatever the hint says (a wrong one too, section 2.1), the token's session ends."""
    form = {"token": getattr(alice, kind)} | ({"token_type_hint": hint} if hint else {})
    response = await client.post("/revoke", form=form)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.get_json() == {}
    assert await me(client, alice.access_token) == 401
    refreshed = await client.post("/refresh", json={"refresh_token": alice.refresh_token})
    assert refreshed.status_code == 400
    revoked = [r for r in events if r.getMessage().startswith("session_revoked")]
    assert [r.how for r in revoked] == ["revoke"]  # type: ignore[attr-defined]


async def test_revoking_ends_only_that_session(client: Client, alice: Account) -> None:
    other = alice.with_tokens(await log_in(client, alice.username, alice.password))
    assert (await client.post("/revoke", form={"token": alice.refresh_token})).status_code == 200
    assert await me(client, alice.access_token) == 401
    assert await me(client, other.access_token) == 200


async def test_revoking_a_spent_refresh_token_ends_its_session(
    client: Client, alice: Account
) -> None:
    """A spent token of the family names its session as well as the current one does."""
    pair = await (
        await client.post("/refresh", json={"refresh_token": alice.refresh_token})
    ).get_json()
    assert (await client.post("/revoke", form={"token": alice.refresh_token})).status_code == 200
    assert await me(client, pair["access_token"]) == 401


def forged(app: Quart, typ: str, **claims: Any) -> str:
    """A token signed with the service's own key but with claims of the caller's choosing."""
    keys: KeySet = services(app).tokens.keys
    now = int(time.time())
    values = {
        "iss": ISSUER,
        "aud": "service-api",
        "sub": "00000000-0000-0000-0000-000000000000",
        "sid": "00000000-0000-0000-0000-000000000000",
        "jti": "j",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
    } | claims
    header = {"alg": keys.algorithm, "kid": keys.signing_kid, "typ": typ}
    return jwt.encode(header, values, keys.signing_key, algorithms=[keys.algorithm])


async def test_dead_and_foreign_tokens_are_revoked_with_the_same_answer(
    app: Quart, client: Client, alice: Account
) -> None:
    """Section 2.2: invalid tokens get 200 too, so the endpoint reveals nothing; and none of
    them touches alice's session."""
    tokens = [
        "x",
        "a.b.c",
        "A" * 5000,
        forged(app, REFRESH_TYP, exp=int(time.time()) - 3600),  # expired
        forged(app, ACCESS_TYP, iss="https://elsewhere.example"),  # foreign issuer
        forged(app, ACCESS_TYP, aud="another-api"),  # foreign audience
        forged(app, "device+jwt"),  # another kind of ours
        services(app).devices.issue(uuid.UUID(alice.id)).value,
    ]
    for token in tokens:
        response = await client.post("/revoke", form={"token": token})
        assert (response.status_code, await response.get_json()) == (200, {}), token[:40]
    assert (await client.post("/revoke", form={"token": alice.refresh_token})).status_code == 200
    again = await client.post("/revoke", form={"token": alice.refresh_token})
    assert (again.status_code, await again.get_json()) == (200, {}), "already revoked"


async def test_a_revocation_without_a_token_is_invalid_request(client: Client) -> None:
    requests: list[dict[str, Any]] = [{"form": {}}, {"form": {"token": ""}}, {"json": ["token"]}]
    for request in requests:
        response = await client.post("/revoke", **request)
        assert response.status_code == 400
        assert (await response.get_json())["error"] == "invalid_request"


async def test_revocation_takes_json_too(client: Client, alice: Account) -> None:
    response = await client.post("/revoke", json={"token": alice.access_token})
    assert response.status_code == 200
    assert await me(client, alice.access_token) == 401


async def test_revocation_is_rate_limited_per_address(make_app: AppFactory) -> None:
    client = (await make_app(auth_requests_per_minute=2)).test_client()
    for _ in range(2):
        assert (await client.post("/revoke", form={"token": "x"})).status_code == 200
    limited = await client.post("/revoke", form={"token": "x"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


# --- introspection (RFC 7662) ----------------------------------------------------------


async def test_an_active_access_token_is_introspected_with_its_claims(
    client: Client, alice: Account
) -> None:
    claims = claims_of(alice.access_token)
    assert await introspect(client, alice.access_token) == {
        "active": True,
        "sub": alice.id,
        "username": "alice",
        "token_type": "bearer",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["nbf"],
        "jti": claims["jti"],
        "iss": ISSUER,
        "aud": "service-api",
    }


async def test_a_revoked_token_is_inactive_at_once_never_a_cached_yes(
    client: Client, alice: Account
) -> None:
    assert (await introspect(client, alice.access_token))["active"] is True
    logout = await client.post("/logout", headers={"Authorization": f"Bearer {alice.access_token}"})
    assert logout.status_code == 204
    assert await introspect(client, alice.access_token) == {"active": False}


async def test_a_token_of_a_deleted_account_is_inactive(client: Client, alice: Account) -> None:
    deleted = await client.delete("/me", headers={"Authorization": f"Bearer {alice.access_token}"})
    assert deleted.status_code == 204
    assert await introspect(client, alice.access_token) == {"active": False}


async def test_refresh_expired_malformed_and_foreign_tokens_are_inactive(
    app: Quart, client: Client, alice: Account
) -> None:
    """A refresh token is no credential for a resource server: never active here."""
    for token in (
        alice.refresh_token,
        "not-a-token",
        "e30.e30.",
        forged(app, ACCESS_TYP, exp=int(time.time()) - 3600),
        forged(app, ACCESS_TYP, iss="https://elsewhere.example"),
        forged(app, ACCESS_TYP, aud="another-api"),
        alice.access_token[:-4] + "AAAA",  # a broken signature
    ):
        assert await introspect(client, token, token_type_hint="refresh_token") == {"active": False}
    assert await me(client, alice.access_token) == 200, "introspection revokes nothing"


async def test_the_other_configured_client_authenticates_too(
    client: Client, alice: Account
) -> None:
    """Its secret holds a colon: RFC 6749 form-encodes id and secret before Basic joins them."""
    response = await client.post(
        "/introspect", form={"token": alice.access_token}, headers=basic(OTHER_ID, OTHER_SECRET)
    )
    assert (await response.get_json())["active"] is True


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        basic(CLIENT_ID, CLIENT_SECRET + "x")["Authorization"],
        basic(CLIENT_ID, CLIENT_SECRET[:-1])["Authorization"],
        basic(CLIENT_ID, "")["Authorization"],
        basic(CLIENT_ID, OTHER_SECRET)["Authorization"],  # another client's secret
        basic("stranger", CLIENT_SECRET)["Authorization"],
        basic(CLIENT_ID.upper(), CLIENT_SECRET)["Authorization"],
        "Bearer " + CLIENT_SECRET,
        "Digest username=resource-server",
        "Basic " + "A" * 2000,
    ],
)
async def test_introspection_refuses_callers_without_the_client_credentials(
    client: Client, alice: Account, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post("/introspect", form={"token": alice.access_token}, headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="service"')
    body = await response.get_json()
    assert body["error"] == "invalid_client"
    assert "alice" not in await response.get_data(as_text=True)


async def test_the_access_token_itself_is_no_introspection_credential(
    client: Client, alice: Account
) -> None:
    response = await client.post(
        "/introspect", form={"token": alice.access_token}, headers=alice.headers
    )
    assert response.status_code == 401


async def test_without_configured_clients_introspection_refuses_everybody(
    make_app: AppFactory,
) -> None:
    app = await make_app(public_base_url=BASE)
    client = app.test_client()
    response = await client.post("/introspect", form={"token": "x"}, headers=RS)
    assert response.status_code == 401
    assert (await response.get_json())["error"] == "invalid_client"


async def test_an_introspection_without_a_token_is_invalid_request(client: Client) -> None:
    response = await client.post("/introspect", form={"token_type_hint": "x"}, headers=RS)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_request"


async def test_refused_introspection_clients_are_security_events(
    client: Client, events: list[logging.LogRecord]
) -> None:
    await client.post("/introspect", form={"token": "x"}, headers=basic(CLIENT_ID, "wrong"))
    messages = [record.getMessage() for record in events]
    assert any(m.startswith("introspection_client_refused") for m in messages), messages
    assert not any("wrong" in m for m in messages), "a presented secret is never logged"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("rs", "client_id:secret"),
        ("rs:", "client_id:secret"),
        (":" + CLIENT_SECRET, "client_id:secret"),
        (f"rs:{CLIENT_SECRET},rs:{OTHER_SECRET}", "twice"),
        ("rs:short", "too weak"),
        ("rs:changeme-changeme-changeme-changeme", "placeholder"),
        (f"r s:{CLIENT_SECRET}", "client id"),
    ],
)
def test_weak_or_malformed_introspection_clients_are_refused(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        Settings(_env_file=None, introspection_clients=value)
    assert CLIENT_SECRET not in str(refused.value), "a secret is never printed"
