"""Authentication before routing: a protected prefix answers 401 to a caller without a valid
token, whatever follows the prefix; with a valid token a malformed id is a plain missing one."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.sessions.bearer import BEARER_SECURITY, PROTECTED_PREFIXES, is_protected
from tests.helpers import Account

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: What can follow a prefix: nothing, a slash, an id of each kind, a path no route has.
SUFFIXES = ("", "/", "/1", f"/{uuid.uuid4()}", "/not-a-uuid", "/no/such/path", "/%20")
#: Authorization headers that carry no valid token: none, another scheme, a broken token.
BAD_CREDENTIALS: tuple[dict[str, str], ...] = (
    {},
    {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
    {"Authorization": "Bearer not.a.token"},
)


def requests_under_every_prefix() -> list[tuple[str, str]]:
    return [
        (method, prefix + suffix)
        for prefix, suffix, method in itertools.product(PROTECTED_PREFIXES, SUFFIXES, METHODS)
    ]


async def test_every_protected_prefix_authenticates_before_routing(client: Client) -> None:
    for (method, path), headers in itertools.product(
        requests_under_every_prefix(), BAD_CREDENTIALS
    ):
        response = await client.open(path, method=method, headers=headers, json={"name": "x"})
        where = f"{method} {path} {headers}"
        assert response.status_code == 401, where
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="service"'), where
        assert ('error="invalid_token"' in challenge) == ("Bearer" in str(headers)), where
        if method != "HEAD":
            assert response.mimetype == "application/problem+json", where


async def test_the_prefix_rule_covers_exactly_the_protected_operations(
    client: Client,
) -> None:
    """Every documented operation that needs a token is under a protected prefix, and every
    operation under one needs a token: a new route cannot fall outside the rule unnoticed."""
    spec: dict[str, Any] = await (await client.get("/openapi.json")).get_json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            needs_token = operation.get("security") == BEARER_SECURITY
            assert needs_token == is_protected(path), f"{method.upper()} {path}"


@pytest.mark.parametrize("path", ["/meow", "/items-archive", "/sessionsx", "/mE"])
async def test_lookalike_paths_are_not_protected(client: Client, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "WWW-Authenticate" not in response.headers


async def test_a_cors_preflight_passes_untouched(app: Quart) -> None:
    response = await app.test_client().options(
        "/items/1",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert response.status_code == 200
    assert "WWW-Authenticate" not in response.headers


async def test_logout_keeps_its_own_rules(client: Client) -> None:
    response = await client.post("/logout")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="service"'


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PUT", {"name": "x"}), ("PATCH", {"name": "x"}), ("DELETE", None)],
)
async def test_a_malformed_item_id_is_the_same_404_as_a_missing_item(
    client: Client, alice: Account, method: str, body: dict[str, str] | None
) -> None:
    missing = await client.open(
        f"/items/{uuid.uuid4()}", method=method, json=body, headers=alice.headers
    )
    assert missing.status_code == 404
    for malformed in ("1", "not-a-uuid", "00000000-0000-0000-0000-00000000000g"):
        response = await client.open(
            f"/items/{malformed}", method=method, json=body, headers=alice.headers
        )
        assert response.status_code == 404, malformed
        assert await response.get_json() == await missing.get_json(), malformed


async def test_a_malformed_session_id_is_the_same_404_as_a_missing_session(
    client: Client, alice: Account
) -> None:
    missing = await client.delete(f"/sessions/{uuid.uuid4()}", headers=alice.headers)
    malformed = await client.delete("/sessions/1", headers=alice.headers)
    assert missing.status_code == malformed.status_code == 404
    assert await malformed.get_json() == await missing.get_json()


async def test_an_item_is_found_only_by_its_canonical_id(client: Client, alice: Account) -> None:
    created = await client.post("/items", json={"name": "Book"}, headers=alice.headers)
    item_id = (await created.get_json())["id"]
    assert (await client.get(f"/items/{item_id}", headers=alice.headers)).status_code == 200
    for other_spelling in (item_id.replace("-", ""), "{" + item_id + "}", f"urn:uuid:{item_id}"):
        response = await client.get(f"/items/{other_spelling}", headers=alice.headers)
        assert response.status_code == 404, other_spelling
