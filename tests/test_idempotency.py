"""``Idempotency-Key`` on the creating POSTs: retries are answered once, on both databases."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from quart import Quart, Response
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select, update
from werkzeug.exceptions import HTTPException

from harness.live_server import LiveServer
from service.db import Writer
from service.db.models import IdempotencyKey, Item, User
from service.idempotency.guard import InvalidKey, fingerprint, once, parse_key, user_scope
from service.items import queries as item_queries
from service.services import services
from tests.helpers import Account

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
BOOK = {"name": "Book", "description": "A nice book"}


def keyed(account: Account | None, key: str = KEY) -> dict[str, str]:
    return (account.headers if account else {}) | {"Idempotency-Key": key}


async def count(app: Quart, table: Any) -> int:
    async with services(app).db.read() as db:
        found: int = await db.scalar(select(func.count()).select_from(table))
    return found


async def answer(response: Any) -> tuple[int, bytes, str | None, str | None]:
    return (
        response.status_code,
        await response.get_data(),
        response.headers.get("Location"),
        response.headers.get("ETag"),
    )


# --- replays ----------------------------------------------------------------------------------


async def test_a_retry_with_the_key_replays_the_answer_and_creates_nothing(
    app: Quart, client: Client, alice: Account
) -> None:
    first = await client.post("/items", json=BOOK, headers=keyed(alice))
    retry = await client.post("/items", json=BOOK, headers=keyed(alice))

    assert first.status_code == 201
    assert await answer(retry) == await answer(first)
    assert retry.headers["Content-Type"] == first.headers["Content-Type"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await count(app, Item) == 1


async def test_the_replay_ignores_key_order_spacing_and_the_trailing_slash(
    app: Quart, client: Client, alice: Account
) -> None:
    first = await client.post("/items", json=BOOK, headers=keyed(alice))
    body = '{ "description": "A nice book",   "name": "Book" }'
    headers = keyed(alice) | {"Content-Type": "application/json"}
    retry = await client.post("/items/", data=body, headers=headers)

    assert retry.status_code == 201
    assert (await retry.get_json())["id"] == (await first.get_json())["id"]
    assert await count(app, Item) == 1


async def test_a_structured_field_string_key_is_the_same_key(
    app: Quart, client: Client, alice: Account
) -> None:
    await client.post("/items", json=BOOK, headers=keyed(alice))
    retry = await client.post("/items", json=BOOK, headers=keyed(alice, f'"{KEY}"'))

    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await count(app, Item) == 1


async def test_without_a_key_every_post_creates(app: Quart, client: Client, alice: Account) -> None:
    await client.post("/items", json=BOOK, headers=alice.headers)
    await client.post("/items", json=BOOK, headers=alice.headers)

    assert await count(app, Item) == 2


async def test_the_same_key_with_another_body_is_422_and_writes_nothing(
    app: Quart, client: Client, alice: Account
) -> None:
    await client.post("/items", json=BOOK, headers=keyed(alice))

    response = await client.post("/items", json={"name": "Pen"}, headers=keyed(alice))

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["errors"][0]["field"] == "Idempotency-Key"
    assert await count(app, Item) == 1


async def test_keys_are_per_user(app: Quart, client: Client, alice: Account, bob: Account) -> None:
    mine = await client.post("/items", json=BOOK, headers=keyed(alice))
    theirs = await client.post("/items", json=BOOK, headers=keyed(bob))

    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert (await theirs.get_json())["id"] != (await mine.get_json())["id"]
    listed = await client.get("/items", headers=bob.headers)
    assert [item["name"] for item in (await listed.get_json())["items"]] == ["Book"]
    assert await count(app, Item) == 2


async def test_an_expired_key_is_a_new_key(app: Quart, client: Client, alice: Account) -> None:
    first = await client.post("/items", json=BOOK, headers=keyed(alice))
    async with services(app).db.write() as db:
        await db.run(
            update(IdempotencyKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    again = await client.post("/items", json={"name": "Pen"}, headers=keyed(alice))

    assert again.status_code == 201
    assert (await again.get_json())["id"] != (await first.get_json())["id"]
    assert await count(app, Item) == 2
    assert await count(app, IdempotencyKey) == 1


async def test_a_key_is_kept_for_the_configured_time(
    app: Quart, client: Client, alice: Account
) -> None:
    before = datetime.now(UTC)
    await client.post("/items", json=BOOK, headers=keyed(alice))

    async with services(app).db.read() as db:
        row = await db.first(select(IdempotencyKey))
    assert row is not None
    ttl = timedelta(seconds=services(app).settings.idempotency_key_ttl)
    assert ttl == timedelta(hours=24)
    assert before + ttl <= row["expires_at"] <= datetime.now(UTC) + ttl
    assert row["scope"] == f"user:{alice.id}"
    assert row["key"] == KEY


# --- failures store no key --------------------------------------------------------------------


async def test_a_refused_request_stores_no_key_so_the_fixed_one_can_reuse_it(
    app: Quart, client: Client, alice: Account
) -> None:
    refused = await client.post("/items", json={"name": ""}, headers=keyed(alice))
    fixed = await client.post("/items", json=BOOK, headers=keyed(alice))

    assert refused.status_code == 422
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers
    assert await count(app, IdempotencyKey) == 1


async def test_an_error_after_the_insert_leaves_neither_the_item_nor_the_key(
    app: Quart, alice: Account
) -> None:
    """Crash safety: the key row and the item commit together or not at all."""

    async def create_then_fail(db: Writer) -> Any:
        await item_queries.insert_item(db, uuid.UUID(alice.id), "Book", None)
        raise RuntimeError("the process dies before the commit")

    async with app.test_request_context("/items", method="POST", headers=keyed(alice)):
        with pytest.raises(RuntimeError):
            await once(user_scope(uuid.UUID(alice.id)), BOOK, create_then_fail)

    assert await count(app, Item) == 0
    assert await count(app, IdempotencyKey) == 0


async def test_the_key_commits_with_the_item(app: Quart, client: Client, alice: Account) -> None:
    await client.post("/items", json=BOOK, headers=keyed(alice))

    async with services(app).db.read() as db:
        row = await db.first(select(IdempotencyKey))
        item = await db.first(select(Item))
    assert row is not None
    assert item is not None
    assert row["status"] == 201
    assert json.loads(row["headers"])["Location"] == f"/items/{item['id']}"
    assert json.loads(row["body"])["id"] == str(item["id"])


async def test_the_keys_go_with_the_account(app: Quart, client: Client, alice: Account) -> None:
    await client.post("/items", json=BOOK, headers=keyed(alice))

    assert (await client.delete("/me", headers=alice.headers)).status_code == 204
    assert await count(app, IdempotencyKey) == 0


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_first_requests_with_one_key_create_one_item(
    app: Quart, client: Client, alice: Account
) -> None:
    responses = await asyncio.gather(
        *(client.post("/items", json=BOOK, headers=keyed(alice)) for _ in range(6))
    )

    assert {response.status_code for response in responses} <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert len({(await r.get_json())["id"] for r in created}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in created) == 1
    assert await count(app, Item) == 1


async def test_a_retry_during_the_first_request_waits_and_gets_its_answer(
    app: Quart, alice: Account
) -> None:
    """The first request holds its transaction open; the retry must neither create nor win."""
    owner = uuid.UUID(alice.id)
    claimed, release = asyncio.Event(), asyncio.Event()
    retry_created: list[bool] = []

    async def slow_create(db: Writer) -> Any:
        item = await item_queries.insert_item(db, owner, "Book", "A nice book")
        claimed.set()
        await release.wait()
        return {"id": str(item.id)}, 201

    async def retry_create(db: Writer) -> Any:
        retry_created.append(True)
        return {}, 201

    async def call(create: Any) -> Any:
        async with app.test_request_context("/items", method="POST", headers=keyed(alice)):
            return await once(user_scope(owner), BOOK, create, owner_id=owner)

    first = asyncio.create_task(call(slow_create))
    await claimed.wait()
    retry = asyncio.create_task(call(retry_create))
    await asyncio.sleep(0.3)  # the retry is now waiting for the first's transaction
    assert not retry.done()
    release.set()

    body, status = await first
    with pytest.raises(HTTPException) as replayed:
        await retry
    response = replayed.value.get_response()
    assert isinstance(response, Response)
    assert status == 201
    assert response.status_code == 201
    assert json.loads(await response.get_data()) == body
    assert response.headers["Idempotent-Replayed"] == "true"
    assert retry_created == []
    assert await count(app, Item) == 1


# --- signup -----------------------------------------------------------------------------------


async def test_a_retried_signup_replays_the_account(app: Quart, client: Client) -> None:
    body = {"username": "carol", "password": "s3cret-passw0rd"}
    first = await client.post("/signup", json=body, headers=keyed(None))
    retry = await client.post("/signup", json=body, headers=keyed(None))

    assert first.status_code == 201
    assert await answer(retry) == await answer(first)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await count(app, User) == 1


async def test_a_signup_key_with_another_username_is_422(app: Quart, client: Client) -> None:
    await client.post(
        "/signup", json={"username": "carol", "password": "s3cret-passw0rd"}, headers=keyed(None)
    )

    response = await client.post(
        "/signup", json={"username": "dave", "password": "s3cret-passw0rd"}, headers=keyed(None)
    )

    assert response.status_code == 422
    assert await count(app, User) == 1


async def test_no_hash_of_the_signup_password_is_stored(app: Quart, client: Client) -> None:
    password = "s3cret-passw0rd"
    await client.post(
        "/signup", json={"username": "carol", "password": password}, headers=keyed(None)
    )

    async with services(app).db.read() as db:
        row = await db.first(select(IdempotencyKey))
    assert row is not None
    with_password = fingerprint("POST", "/signup", {"username": "carol", "password": password})
    assert row["fingerprint"] == fingerprint("POST", "/signup", {"username": "carol"})
    assert row["fingerprint"] != with_password
    assert password not in (row["body"] + row["headers"])


async def test_a_taken_username_stores_no_key(app: Quart, client: Client, alice: Account) -> None:
    response = await client.post(
        "/signup", json={"username": "alice", "password": "s3cret-passw0rd"}, headers=keyed(None)
    )

    assert response.status_code == 409
    assert await count(app, IdempotencyKey) == 0


async def test_login_ignores_the_key(client: Client, alice: Account) -> None:
    form = {"username": "alice", "password": alice.password}
    first = await client.post("/login", form=form, headers=keyed(None))
    second = await client.post("/login", form=form, headers=keyed(None))

    assert first.status_code == second.status_code == 200
    assert (await first.get_json())["refresh_token"] != (await second.get_json())["refresh_token"]


# --- the header's syntax ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", '""', "x" * 256, "café", "a\tb", '"unterminated', '"bad\\escape"', '"a"b"'],
    ids=repr,
)
async def test_a_malformed_key_is_400_and_creates_nothing(
    app: Quart, client: Client, alice: Account, key: str
) -> None:
    headers = alice.headers | {"Idempotency-Key": key}
    response = await client.post("/items", json=BOOK, headers=headers)

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert await count(app, Item) == 0


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("abc", "abc"),
        ('"abc"', "abc"),
        ('"a\\"b\\\\c"', 'a"b\\c'),
        ("x" * 255, "x" * 255),
        ("with space", "with space"),
    ],
)
def test_keys_that_parse(raw: str, key: str) -> None:
    assert parse_key([raw]) == key


def test_two_key_headers_are_refused() -> None:
    with pytest.raises(InvalidKey):
        parse_key(["a", "b"])


def test_no_header_is_no_key() -> None:
    assert parse_key([]) is None


# --- over real HTTP -------------------------------------------------------------------------


@pytest.mark.e2e
def test_concurrent_retries_across_workers_create_once(live_server: LiveServer) -> None:
    """Two Hypercorn workers, one database: eight copies of one keyed create, one item."""
    name = f"retry-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    with live_server.client() as http:
        signup = http.post(
            "/signup", json={"username": name, "password": password}, headers=keyed(None)
        )
        assert signup.status_code == 201, signup.text
        tokens = http.post("/login", data={"username": name, "password": password}).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "Idempotency-Key": KEY}

    def post(_: int) -> httpx.Response:
        with live_server.client() as http:
            return http.post("/items", json=BOOK, headers=headers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(8)))

    assert {response.status_code for response in responses} <= {201, 409}
    created = [response for response in responses if response.status_code == 201]
    assert len({response.json()["id"] for response in created}) == 1
    assert sum("Idempotent-Replayed" not in response.headers for response in created) == 1
    with live_server.client() as http:
        listed = http.get("/items", headers=headers).json()["items"]
    assert [item["name"] for item in listed] == ["Book"]
