"""The OAuth 2.0 refresh grant (RFC 6749 section 6) at the token endpoint and at ``/refresh``.

``grant_type=refresh_token`` at ``/login`` is a refresh under the same rotation rules as
``/refresh``; ``/refresh`` takes the same field, and another grant type is
``unsupported_grant_type`` at both.
"""

from __future__ import annotations

from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from tests.helpers import Account
from tests.test_refresh import assert_invalid_grant, bearer, claims, refresh

PAIR_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in", "refresh_expires_in"}


async def refresh_grant(client: Client, token: str, *, as_json: bool = False, **extra: str) -> Any:
    fields = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    if as_json:
        return await client.post("/login", json=fields)
    return await client.post("/login", form=fields)


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_the_token_endpoint_refreshes_with_the_refresh_grant(
    client: Client, alice: Account, as_json: bool
) -> None:
    response = await refresh_grant(client, alice.refresh_token, as_json=as_json)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    pair = await response.get_json()
    assert set(pair) == PAIR_FIELDS  # a refresh: no new device credential
    assert claims(pair["refresh_token"])["sid"] == claims(alice.refresh_token)["sid"]
    assert (await client.get("/me", headers=bearer(pair["access_token"]))).status_code == 200


async def test_the_refresh_grant_spends_the_token_as_refresh_does(
    client: Client, alice: Account
) -> None:
    first = await (await refresh_grant(client, alice.refresh_token)).get_json()

    # The same rotation rules: the spent token again (no reuse interval here) ends the session.
    await assert_invalid_grant(await refresh_grant(client, alice.refresh_token))
    assert (await client.get("/me", headers=bearer(first["access_token"]))).status_code == 401


async def test_the_refresh_grant_ignores_scope_and_client_credentials(
    client: Client, alice: Account
) -> None:
    response = await refresh_grant(
        client, alice.refresh_token, scope="items", client_id="app", client_secret="x"
    )

    assert response.status_code == 200


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
async def test_a_bad_token_at_the_refresh_grant_is_invalid_grant(
    client: Client, token: str
) -> None:
    await assert_invalid_grant(await refresh_grant(client, token))


async def test_an_access_token_at_the_refresh_grant_is_invalid_grant(
    client: Client, alice: Account
) -> None:
    await assert_invalid_grant(await refresh_grant(client, alice.access_token))


async def test_the_refresh_grant_without_a_token_is_invalid_request(client: Client) -> None:
    response = await client.post("/login", form={"grant_type": "refresh_token"})

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["error"] == "invalid_request"


async def test_refresh_accepts_the_refresh_grant_type(client: Client, alice: Account) -> None:
    response = await client.post(
        "/refresh", form={"grant_type": "refresh_token", "refresh_token": alice.refresh_token}
    )

    assert response.status_code == 200
    assert set(await response.get_json()) == PAIR_FIELDS


@pytest.mark.parametrize("grant_type", ["password", "client_credentials", "", "REFRESH_TOKEN"])
async def test_refresh_refuses_another_grant_type(
    client: Client, alice: Account, grant_type: str
) -> None:
    response = await client.post(
        "/refresh", json={"grant_type": grant_type, "refresh_token": alice.refresh_token}
    )

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["error"] == "unsupported_grant_type"
    # Nothing was spent.
    assert (await refresh(client, alice.refresh_token)).status_code == 200


async def test_refresh_refuses_a_grant_type_that_is_not_a_string(
    client: Client, alice: Account
) -> None:
    response = await client.post(
        "/refresh", json={"grant_type": ["refresh_token"], "refresh_token": alice.refresh_token}
    )

    assert response.status_code == 400
    assert (await response.get_json())["error"] == "unsupported_grant_type"
