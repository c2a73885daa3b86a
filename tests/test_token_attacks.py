"""Forged and doctored tokens are refused by a running service, for every signing algorithm.

Each test builds a token from a genuine one (alice's, after a real login) with an independent
signer (``tests.signing``), changes one thing, and presents it to a protected route (``/me``,
401 ``invalid_token``) and, as a refresh token, to ``/refresh`` (400 ``invalid_grant``).
Most forgeries carry a valid signature by the configured key, so the refusal proves the rule
under test, not just the signature check. A refused refresh token must also leave the session
alone: had it passed verification, the reuse rule would have revoked the session.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from service.config import Settings
from tests.helpers import Account, make_settings
from tests.signing import (
    ALGORITHMS,
    ASYMMETRIC,
    SigningKey,
    b64url,
    claims_of,
    header_of,
    key_settings,
    part,
    public_jwk,
    public_pem,
    sign,
    thumbprint,
)

REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid")
#: A header that is not a JSON object, and one that is not even complete JSON.
NOT_AN_OBJECT = f"{b64url(b'[]')}.{b64url(b'{}')}."
BROKEN_JSON = b64url(b'{"alg":"HS256"') + ".e30."


# The conftest ``key_pool`` per algorithm: the configured key, then two keys the service has
# never been given.


@pytest.fixture
def key(key_pool: dict[str, list[SigningKey]], algorithm: str) -> SigningKey:
    return key_pool[algorithm][0]


@pytest.fixture
def foreign_key(key_pool: dict[str, list[SigningKey]], algorithm: str) -> SigningKey:
    """A key of the right type that was never configured (a retired or an attacker's key)."""
    return key_pool[algorithm][1]


@pytest.fixture
def settings(database_url: str, algorithm: str, key: SigningKey) -> Settings:
    """The conftest ``app`` and ``client`` run with ``key`` signing tokens as ``algorithm``."""
    return make_settings(database_url, **key_settings(algorithm, key))


class Forger:
    """Makes tokens like alice's, signed with the configured key unless told otherwise."""

    def __init__(self, algorithm: str, key: SigningKey) -> None:
        self.algorithm = algorithm
        self.key = key

    def __call__(
        self,
        token: str,
        *,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop_header: tuple[str, ...] = (),
        drop_claims: tuple[str, ...] = (),
        key: SigningKey | bytes | None = None,
        alg: str | None = None,
    ) -> str:
        new_header = {**header_of(token), **(header or {})}
        new_claims = {**claims_of(token), **(claims or {})}
        for name in drop_header:
            new_header.pop(name, None)
        for name in drop_claims:
            new_claims.pop(name, None)
        signing_key = self.key if key is None else key
        return sign(new_header, new_claims, signing_key, alg or self.algorithm)


@pytest.fixture
def forge(algorithm: str, key: SigningKey) -> Forger:
    return Forger(algorithm, key)


async def assert_access_refused(client: Client, token: str) -> None:
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert (await response.get_json())["error"] == "invalid_token"


async def assert_refresh_refused(client: Client, token: str, account: Account) -> None:
    """``/refresh`` refuses ``token`` and the session lives on (nothing treated it as reuse)."""
    response = await client.post("/refresh", json={"refresh_token": token})
    assert response.status_code == 400, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["error"] in {"invalid_grant", "invalid_request"}
    me = await client.get("/me", headers=account.headers)
    assert me.status_code == 200, "a refused refresh token must not end the session"
    genuine = await client.post("/refresh", json={"refresh_token": account.refresh_token})
    assert genuine.status_code == 200
    account.refresh_token = (await genuine.get_json())["refresh_token"]


async def assert_refused_everywhere(
    client: Client, account: Account, access: str, refresh: str
) -> None:
    await assert_access_refused(client, access)
    await assert_refresh_refused(client, refresh, account)


# --- the control: the forger's honest tokens are accepted --------------------------------


async def test_a_token_re_signed_with_the_configured_key_is_accepted(
    client: Client, alice: Account, forge: Forger
) -> None:
    """Without this, every refusal below could be the forger's fault."""
    access = forge(alice.access_token)
    response = await client.get("/me", headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 200
    refreshed = await client.post("/refresh", json={"refresh_token": forge(alice.refresh_token)})
    assert refreshed.status_code == 200


async def test_issued_tokens_carry_the_algorithm_kid_and_kind(
    alice: Account, algorithm: str, key: SigningKey
) -> None:
    access, refresh = header_of(alice.access_token), header_of(alice.refresh_token)
    assert access == {"alg": algorithm, "kid": thumbprint(key), "typ": "at+jwt"}
    assert refresh == {"alg": algorithm, "kid": thumbprint(key), "typ": "refresh+jwt"}


# --- keys ----------------------------------------------------------------------------------


async def test_a_token_signed_with_a_retired_key_is_refused(
    client: Client, alice: Account, forge: Forger, foreign_key: SigningKey
) -> None:
    def retired(token: str) -> str:
        return forge(token, header={"kid": thumbprint(foreign_key)}, key=foreign_key)

    await assert_refused_everywhere(
        client, alice, retired(alice.access_token), retired(alice.refresh_token)
    )


async def test_a_foreign_signature_under_the_configured_kid_is_refused(
    client: Client, alice: Account, forge: Forger, foreign_key: SigningKey
) -> None:
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, key=foreign_key),
        forge(alice.refresh_token, key=foreign_key),
    )


@pytest.mark.parametrize("kid", ["unknown", "", "../../etc/passwd", "' OR 1=1 --", 7, None])
async def test_an_unknown_kid_is_refused(
    client: Client, alice: Account, forge: Forger, kid: object
) -> None:
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, header={"kid": kid}),
        forge(alice.refresh_token, header={"kid": kid}),
    )


async def test_a_token_without_kid_is_refused(
    client: Client, alice: Account, forge: Forger
) -> None:
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, drop_header=("kid",)),
        forge(alice.refresh_token, drop_header=("kid",)),
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jwk", {"kty": "oct", "k": "c2VjcmV0"}),
        ("x5c", ["MIIBszCCAVmgAwIBAgIUQ"]),
    ],
)
async def test_headers_naming_a_key_are_refused_even_with_a_valid_signature(
    client: Client, alice: Account, forge: Forger, name: str, value: object
) -> None:
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, header={name: value}),
        forge(alice.refresh_token, header={name: value}),
    )


async def test_a_token_bringing_its_own_key_in_jwk_is_refused(
    client: Client, alice: Account, forge: Forger, foreign_key: SigningKey
) -> None:
    """CVE-2018-0114: sign with your own key and embed it; a naive verifier trusts it."""
    embedded = {**public_jwk(foreign_key), "kid": thumbprint(foreign_key)}

    def own_key(token: str) -> str:
        header = {"jwk": embedded, "kid": thumbprint(foreign_key)}
        return forge(token, header=header, key=foreign_key)

    await assert_refused_everywhere(
        client, alice, own_key(alice.access_token), own_key(alice.refresh_token)
    )


# --- algorithms ----------------------------------------------------------------------------


@pytest.mark.parametrize("none", ["none", "None", "NONE"])
async def test_an_unsigned_token_is_refused(
    client: Client, alice: Account, forge: Forger, none: str
) -> None:
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, header={"alg": none}, alg="none"),
        forge(alice.refresh_token, header={"alg": none}, alg="none"),
    )


async def test_a_token_with_its_signature_cut_off_is_refused(
    client: Client, alice: Account
) -> None:
    def cut(token: str) -> str:
        return token.rsplit(".", 1)[0] + "."

    await assert_refused_everywhere(
        client, alice, cut(alice.access_token), cut(alice.refresh_token)
    )


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_hmac_keyed_with_the_public_key_is_refused(
    client: Client, alice: Account, forge: Forger, key: SigningKey
) -> None:
    """Algorithm confusion (RFC 8725 section 2.1): the public key, known to all, as HMAC secret."""
    assert not isinstance(key, str)
    for secret in (public_pem(key).encode(), public_pem(key).strip().encode()):

        def confused(token: str, secret: bytes = secret) -> str:
            return forge(token, header={"alg": "HS256"}, key=secret, alg="HS256")

        await assert_refused_everywhere(
            client, alice, confused(alice.access_token), confused(alice.refresh_token)
        )


@pytest.mark.parametrize(
    ("algorithm", "other"),
    [
        (configured, other)
        for configured in ALGORITHMS
        for other in ALGORITHMS
        if configured != other
    ],
)
async def test_a_token_of_another_algorithm_is_refused(
    client: Client,
    alice: Account,
    forge: Forger,
    key_pool: dict[str, list[SigningKey]],
    other: str,
) -> None:
    """E.g. RS256 when ES256 is configured, under the configured kid or the other key's own."""
    other_key = key_pool[other][2]
    for kid in (header_of(alice.access_token)["kid"], thumbprint(other_key)):

        def other_alg(token: str, kid: str = kid) -> str:
            return forge(token, header={"alg": other, "kid": kid}, key=other_key, alg=other)

        await assert_refused_everywhere(
            client, alice, other_alg(alice.access_token), other_alg(alice.refresh_token)
        )


@pytest.mark.parametrize("algorithm", ["Ed25519"])
async def test_the_old_eddsa_name_is_not_accepted_in_tokens(
    client: Client, alice: Account, forge: Forger
) -> None:
    """Tokens are issued with RFC 9864's ``Ed25519``; only that name is accepted."""
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, header={"alg": "EdDSA"}),
        forge(alice.refresh_token, header={"alg": "EdDSA"}),
    )


# --- claims --------------------------------------------------------------------------------


async def test_an_expired_token_is_refused(client: Client, alice: Account, forge: Forger) -> None:
    now = int(time.time())
    past = {"iat": now - 3600, "nbf": now - 3600, "exp": now - 60}
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, claims=past),
        forge(alice.refresh_token, claims=past),
    )


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_a_token_from_the_future_is_refused(
    client: Client, alice: Account, forge: Forger, claim: str
) -> None:
    future = {claim: int(time.time()) + 600}
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, claims=future),
        forge(alice.refresh_token, claims=future),
    )


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", "https://attacker.example"),
        ("iss", ""),
        ("aud", "another-api"),
        ("aud", ["another-api"]),
        ("exp", "never"),
        ("sub", "not-a-uuid"),
        ("sid", 42),
    ],
)
async def test_a_token_with_a_wrong_claim_is_refused(
    client: Client, alice: Account, forge: Forger, claim: str, value: object
) -> None:
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, claims={claim: value}),
        forge(alice.refresh_token, claims={claim: value}),
    )


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
async def test_a_token_missing_a_required_claim_is_refused(
    client: Client, alice: Account, forge: Forger, claim: str
) -> None:
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, drop_claims=(claim,)),
        forge(alice.refresh_token, drop_claims=(claim,)),
    )


# --- kinds ---------------------------------------------------------------------------------


async def test_a_refresh_token_is_not_an_access_token(client: Client, alice: Account) -> None:
    await assert_access_refused(client, alice.refresh_token)


async def test_an_access_token_is_not_a_refresh_token(client: Client, alice: Account) -> None:
    await assert_refresh_refused(client, alice.access_token, alice)


@pytest.mark.parametrize("typ", ["JWT", "at+jwt ", "refresh", None])
async def test_a_token_of_an_unknown_kind_is_refused(
    client: Client, alice: Account, forge: Forger, typ: str | None
) -> None:
    header = {} if typ is None else {"typ": typ}
    drop = ("typ",) if typ is None else ()
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, header=header, drop_header=drop),
        forge(alice.refresh_token, header=header, drop_header=drop),
    )


async def test_relabelling_a_refresh_token_as_access_breaks_it(
    client: Client, alice: Account
) -> None:
    """Only the header changes; the signature no longer matches, so nothing is gained."""
    _, payload, sig = alice.refresh_token.split(".")
    relabelled = {**header_of(alice.refresh_token), "typ": "at+jwt"}
    await assert_access_refused(client, f"{part(relabelled)}.{payload}.{sig}")


# --- headers and shape ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "extension",
    [
        {"crit": ["exp"], "exp": 1},
        {"crit": ["b64"], "b64": False},
        {"crit": ["urn:example:ext"], "urn:example:ext": True},
    ],
)
async def test_a_token_with_a_crit_header_is_refused(
    client: Client, alice: Account, forge: Forger, extension: dict[str, Any]
) -> None:
    """RFC 7515 section 4.1.11: extensions we do not implement make the JWS invalid."""
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, header=extension),
        forge(alice.refresh_token, header=extension),
    )


async def test_a_tampered_payload_is_refused(client: Client, alice: Account, bob: Account) -> None:
    """Alice's signature over bob's identity, or over a later expiry, is worthless."""
    for changes in ({"sub": bob.id}, {"exp": claims_of(alice.access_token)["exp"] + 3600}):

        def tampered(token: str, changes: dict[str, Any] = changes) -> str:
            head, _, sig = token.split(".")
            return f"{head}.{part({**claims_of(token), **changes})}.{sig}"

        await assert_refused_everywhere(
            client, alice, tampered(alice.access_token), tampered(alice.refresh_token)
        )


async def test_a_flipped_signature_bit_is_refused(client: Client, alice: Account) -> None:
    def flipped(token: str) -> str:
        head, payload, sig = token.split(".")
        raw = bytearray(sig.encode())
        raw[3] = ord("A") if raw[3] != ord("A") else ord("B")
        return f"{head}.{payload}.{raw.decode()}"

    await assert_refused_everywhere(
        client, alice, flipped(alice.access_token), flipped(alice.refresh_token)
    )


async def test_an_oversized_token_is_refused(client: Client, alice: Account, forge: Forger) -> None:
    """Validly signed but padded past any token the service issues: refused before parsing."""
    padding = {"pad": "x" * 5000}
    await assert_refused_everywhere(
        client,
        alice,
        forge(alice.access_token, claims=padding),
        forge(alice.refresh_token, claims=padding),
    )


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",
        "....",
        "é.é.é",
        NOT_AN_OBJECT,
        BROKEN_JSON,
    ],
)
@pytest.mark.parametrize("algorithm", ["HS256", "ES256"])
async def test_malformed_tokens_are_refused(client: Client, alice: Account, token: str) -> None:
    await assert_refused_everywhere(client, alice, token, token)
