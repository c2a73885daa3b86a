"""``OPTIONS`` under ``/admin``: no token, no ``Allow``; a CORS preflight still works.

``Allow`` lists what a path offers, so ``OPTIONS`` is guarded like every other method: 401
without a token, 403 for a non-admin. A CORS preflight passes without a token while
``CORS_ORIGINS`` is set (browsers send it without credentials), and then lists no method the
OpenAPI document does not already publish for the path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service import create_app
from service.services import services
from tests.helpers import Account, delete_all_rows, make_settings, sign_up
from tests.session_helpers import bearer
from tests.test_admin import make_admin

APP = "https://app.example.com"
PATHS = ["/admin/users", "/admin/users/{id}", "/admin/users/{id}/sessions"]
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "DELETE"}


@pytest.fixture
async def cors_client(database_url: str) -> AsyncIterator[Client]:
    """A client of an app that lets pages of ``APP`` call it (``CORS_ORIGINS``)."""
    app = create_app(make_settings(database_url, cors_origins=APP))
    async with app.test_app() as served:
        await delete_all_rows(services(app))
        yield served.test_client()


async def assert_refused(response: Any, status: int) -> None:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert "Allow" not in response.headers


@pytest.mark.parametrize("path", PATHS)
async def test_anonymous_options_is_401_without_allow(
    client: Client, alice: Account, path: str
) -> None:
    for headers in ({}, PREFLIGHT):  # without CORS a preflight is just another OPTIONS
        response = await client.options(path.format(id=alice.id), headers=headers)
        await assert_refused(response, 401)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="service"'


@pytest.mark.parametrize("path", PATHS)
async def test_options_of_a_non_admin_is_403_and_of_an_admin_lists_the_methods(
    app: Quart, client: Client, alice: Account, bob: Account, path: str
) -> None:
    target = path.format(id=bob.id)
    await assert_refused(await client.options(target, headers=alice.headers), 403)

    await make_admin(app, alice)
    response = await client.options(target, headers=alice.headers)

    assert response.status_code == 200
    assert "GET" in response.headers["Allow"]


async def test_with_cors_on_only_a_preflight_goes_without_a_token(cors_client: Client) -> None:
    plain = await cors_client.options("/admin/users", headers={"Origin": APP})
    await assert_refused(plain, 401)
    assert plain.headers["Access-Control-Allow-Origin"] == APP  # the page may read the 401

    preflight = await cors_client.options("/admin/users", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == APP


async def test_a_preflight_lists_no_method_the_openapi_document_does_not(
    cors_client: Client,
) -> None:
    document = await (await cors_client.get("/openapi.json")).get_json()
    admin_paths = {
        path: ops for path, ops in document["paths"].items() if path.startswith("/admin")
    }
    assert admin_paths
    for path, operations in admin_paths.items():
        concrete = re.sub(r"\{\w+\}", "0b4a1c9e-0000-4000-8000-000000000000", path)
        response = await cors_client.options(concrete, headers=PREFLIGHT)
        allowed = {method.strip().lower() for method in response.headers["Allow"].split(",")}
        documented = set(operations) | {"options"} | ({"head"} if "get" in operations else set())
        assert allowed <= documented, path


async def test_an_unrouted_path_below_admin_is_401_for_anonymous_options(client: Client) -> None:
    for path in ("/admin", "/admin/nothing", "/admin/users/x/y"):
        await assert_refused(await client.options(path), 401)


async def test_with_cors_on_a_users_token_is_still_403(cors_client: Client) -> None:
    """CORS changes nothing for a request that is not a preflight."""
    alice = await sign_up(cors_client, "alice")
    response = await cors_client.options("/admin/users", headers=bearer(alice.access_token))
    await assert_refused(response, 403)
