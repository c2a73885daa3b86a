"""Hostile bytes are client errors: never a 500, never a traceback in the log.

JSON that Python's parser refuses for its limits (nesting past the recursion limit, integers
past ``sys.get_int_max_str_digits()``), any ``If-Match`` / ``If-None-Match`` value and any cursor,
on every route that reads them, on both databases. The error is answered with problem+json and
logged as the one access line of the request, nothing more.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from tests.helpers import Account

DEEP = b"[" * 2000
DEEP_OBJECT = b'{"a":' * 2000 + b"1" + b"}" * 2000
HUGE_NUMBER = b'{"name": ' + b"9" * 5000 + b"}"
HOSTILE_BODIES = [DEEP, DEEP_OBJECT, HUGE_NUMBER, b'{"refresh_token": 1e999}', b"-" + b"9" * 9000]
#: (method, path, needs a bearer token) of every route that reads a JSON body.
BODY_ROUTES = [
    ("POST", "/signup", False),
    ("POST", "/login", False),
    ("POST", "/refresh", False),
    ("POST", "/logout", False),
    ("POST", "/me/password", True),
    ("POST", "/items", True),
    ("PUT", "/items/{id}", True),
    ("PATCH", "/items/{id}", True),
]
HOSTILE_TAGS = [
    '"²"',
    '"٣"',  # an Arabic-Indic digit: str.isdigit() says yes, int() would take it
    '"' + "9" * 5000 + '"',
    "9" * 5000,
    f'"{2**31}"',
    f'"{2**63}"',
    '"-1"',
    '"1e3"',
    'W/"' + "1" * 30 + '"',
    '"1", "' + "7" * 4400 + '"',
    "garbage",
    '"',
    ",,,",
    '*, "1"',
    '"\\"1\\""',
    "\x00",
    '"1"' * 1000,
]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: An id in a cursor; fixed, because it is part of the test ids, and the pytest-xdist workers
#: must each collect the same tests.
ANY_ID = "6f1c2a7e-3b1d-4c5e-9a8f-0d2e4b6c8a10"
HOSTILE_CURSORS = [
    _b64(json.dumps(["2024-01-01T00:00:00+00:00", ["a"]]).encode()),
    _b64(json.dumps([["2024"], ANY_ID]).encode()),
    _b64(json.dumps([{"a": 1}, {"b": 2}]).encode()),
    _b64(json.dumps([1, 2]).encode()),
    _b64(json.dumps(["2024-01-01T00:00:00+00:00", None]).encode()),
    _b64(json.dumps({"a": 1, "b": 2}).encode()),
    _b64(json.dumps("ab").encode()),
    _b64(b"[" * 150),
    _b64(b"[" + b"9" * 140 + b"]"),
    _b64(b"\xff\xfe"),
    _b64(json.dumps(["9999-12-31T23:59:59-23:59", ANY_ID]).encode()),
    "!!!",
    "a",
    "%00",
]


@pytest.fixture
def errors_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """What the service logs besides its access lines (``service`` does not propagate; pytest
    attaches ``caplog`` to it once a level is set on it)."""
    caplog.set_level(logging.DEBUG, logger="service")
    return caplog


def assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged but access lines, and none of them with a traceback."""
    assert any(record.name == "service.access" for record in caplog.records)  # it did capture
    others = [record for record in caplog.records if record.name != "service.access"]
    assert not others, [record.getMessage() for record in others]
    assert not any(record.exc_info for record in caplog.records)


async def _item_id(client: Client, account: Account) -> str:
    response = await client.post("/items", json={"name": "target"}, headers=account.headers)
    assert response.status_code == 201
    item_id: str = (await response.get_json())["id"]
    return item_id


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=["deep", "deep-object", "huge", "inf", "neg"])
async def test_json_past_the_parsers_limits_is_a_client_error_on_every_body_route(
    client: Client, alice: Account, errors_logged: pytest.LogCaptureFixture, body: bytes
) -> None:
    item_id = await _item_id(client, alice)
    for method, path, needs_token in BODY_ROUTES:
        headers = {"Content-Type": "application/json", **(alice.headers if needs_token else {})}
        send = getattr(client, method.lower())
        response = await send(path.format(id=item_id), data=body, headers=headers)
        assert response.status_code in {400, 422}, (method, path, response.status_code)
        assert response.mimetype == "application/problem+json"
    assert_quiet(errors_logged)


async def test_a_hostile_body_changes_nothing(client: Client, alice: Account) -> None:
    item_id = await _item_id(client, alice)
    for body in HOSTILE_BODIES:
        for method in ("PUT", "PATCH"):
            response = await getattr(client, method.lower())(
                f"/items/{item_id}",
                data=body,
                headers={"Content-Type": "application/json", **alice.headers},
            )
            assert response.status_code in {400, 422}
    item = await (await client.get(f"/items/{item_id}", headers=alice.headers)).get_json()
    assert item["name"] == "target"
    listing = await (await client.get("/items", headers=alice.headers)).get_json()
    assert len(listing["items"]) == 1


@pytest.mark.parametrize("tag", HOSTILE_TAGS)
async def test_any_if_match_is_a_412_and_any_if_none_match_a_full_answer(
    client: Client, alice: Account, errors_logged: pytest.LogCaptureFixture, tag: str
) -> None:
    item_id = await _item_id(client, alice)
    for method in ("PUT", "PATCH"):
        response = await getattr(client, method.lower())(
            f"/items/{item_id}",
            json={"name": "changed"},
            headers={"If-Match": tag, **alice.headers},
        )
        # Only '*, "1"' names the current version (1) or any version.
        assert response.status_code in {200, 412}, (method, response.status_code)
    read = await client.get(f"/items/{item_id}", headers={"If-None-Match": tag, **alice.headers})
    assert read.status_code in {200, 304}
    assert_quiet(errors_logged)


async def test_an_if_match_beyond_the_version_column_is_412_not_a_database_error(
    client: Client, alice: Account
) -> None:
    item_id = await _item_id(client, alice)
    for tag in (f'"{2**31}"', f'"{2**31 - 1}"', f'"{2**64}"', '"' + "9" * 5000 + '"'):
        response = await client.patch(
            f"/items/{item_id}", json={"name": "x"}, headers={"If-Match": tag, **alice.headers}
        )
        assert response.status_code == 412, tag
    item = await (await client.get(f"/items/{item_id}", headers=alice.headers)).get_json()
    assert item["name"] == "target"


@pytest.mark.parametrize("cursor", HOSTILE_CURSORS)
async def test_any_cursor_is_a_422(
    client: Client, alice: Account, errors_logged: pytest.LogCaptureFixture, cursor: str
) -> None:
    response = await client.get("/items", query_string={"cursor": cursor}, headers=alice.headers)
    assert response.status_code == 422, await response.get_data(as_text=True)
    body: dict[str, Any] = await response.get_json()
    assert body["errors"][0]["field"] == "cursor"
    assert_quiet(errors_logged)
