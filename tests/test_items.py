"""Items: CRUD, ownership, pagination, conditional requests and bearer authentication."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, insert, select

from service.db.models import Item
from tests.helpers import Account

ITEM_FIELDS = {"id", "name", "description", "created_at", "updated_at"}
SOME_ID = b"0b4c3a52-5f0e-4b8a-9d43-4f6e2a1c7d90"


async def create(client: Client, account: Account, name: str, description: Any = None) -> Any:
    body: dict[str, Any] = {"name": name}
    if description is not None:
        body["description"] = description
    response = await client.post("/items", json=body, headers=account.headers)
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()


async def fetch(client: Client, account: Account, item_id: str) -> Any:
    return await client.get(f"/items/{item_id}", headers=account.headers)


async def count_items(app: Quart) -> int:
    async with app.extensions["service"].db.read() as db:
        found: int = await db.scalar(select(func.count()).select_from(Item))
    return found


def with_headers(account: Account, **extra: str) -> dict[str, str]:
    return account.headers | {name.replace("_", "-"): value for name, value in extra.items()}


# --- CRUD -----------------------------------------------------------------------------------


async def test_create_item_returns_it_with_location_and_etag(
    client: Client, alice: Account
) -> None:
    response = await client.post(
        "/items", json={"name": "Book", "description": "A nice book"}, headers=alice.headers
    )

    assert response.status_code == 201
    item = await response.get_json()
    assert set(item) == ITEM_FIELDS
    assert item["name"] == "Book"
    assert item["description"] == "A nice book"
    uuid.UUID(item["id"])
    assert datetime.fromisoformat(item["created_at"]).tzinfo is not None
    assert item["created_at"] == item["updated_at"]
    assert response.headers["Location"] == f"/items/{item['id']}"
    assert response.headers["ETag"].startswith('"')


async def test_create_item_without_description(client: Client, alice: Account) -> None:
    item = await create(client, alice, "Pen")
    assert item["description"] is None


async def test_the_location_of_a_new_item_reads_it_back(client: Client, alice: Account) -> None:
    response = await client.post("/items", json={"name": "Book"}, headers=alice.headers)

    read = await client.get(response.headers["Location"], headers=alice.headers)

    assert read.status_code == 200
    assert (await read.get_json()) == (await response.get_json())
    assert read.headers["ETag"] == response.headers["ETag"]


async def test_read_item_answers_304_to_its_current_etag(client: Client, alice: Account) -> None:
    item = await create(client, alice, "Book")
    etag = (await fetch(client, alice, item["id"])).headers["ETag"]

    response = await client.get(
        f"/items/{item['id']}", headers=with_headers(alice, If_None_Match=etag)
    )

    assert response.status_code == 304
    assert response.headers["ETag"] == etag
    assert (await response.get_data()) == b""


@pytest.mark.parametrize("form", ["weak", "star", "list"])
async def test_read_item_answers_304_to_a_weak_listed_or_star_if_none_match(
    client: Client, alice: Account, form: str
) -> None:
    item = await create(client, alice, "Book")
    etag = (await fetch(client, alice, item["id"])).headers["ETag"]
    header = {"weak": f"W/{etag}", "star": "*", "list": f'"999", {etag}'}[form]

    response = await client.get(
        f"/items/{item['id']}", headers=with_headers(alice, If_None_Match=header)
    )

    assert response.status_code == 304


async def test_read_item_answers_200_to_a_stale_etag(client: Client, alice: Account) -> None:
    item = await create(client, alice, "Book")
    stale = (await fetch(client, alice, item["id"])).headers["ETag"]
    await client.patch(f"/items/{item['id']}", json={"name": "Novel"}, headers=alice.headers)

    response = await client.get(
        f"/items/{item['id']}", headers=with_headers(alice, If_None_Match=stale)
    )

    assert response.status_code == 200
    assert (await response.get_json())["name"] == "Novel"
    assert response.headers["ETag"] != stale


async def test_put_replaces_the_item_and_clears_an_omitted_description(
    client: Client, alice: Account
) -> None:
    item = await create(client, alice, "Book", "A nice book")

    response = await client.put(
        f"/items/{item['id']}", json={"name": "Novel"}, headers=alice.headers
    )

    assert response.status_code == 200
    replaced = await response.get_json()
    assert replaced["id"] == item["id"]
    assert replaced["name"] == "Novel"
    assert replaced["description"] is None
    assert replaced["created_at"] == item["created_at"]
    assert replaced["updated_at"] > item["updated_at"]
    assert (await (await fetch(client, alice, item["id"])).get_json()) == replaced


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param({"description": "no name"}, id="name-missing"),
        pytest.param({"name": None}, id="name-null"),
        pytest.param({"name": ""}, id="name-empty"),
        pytest.param({"name": "x", "owner_id": str(uuid.uuid4())}, id="extra-field"),
    ],
)
async def test_put_refuses_an_incomplete_item(client: Client, alice: Account, body: Any) -> None:
    item = await create(client, alice, "Book", "A nice book")

    response = await client.put(f"/items/{item['id']}", json=body, headers=alice.headers)

    assert response.status_code == 422
    assert (await (await fetch(client, alice, item["id"])).get_json()) == item


async def test_patch_changes_only_the_fields_sent(client: Client, alice: Account) -> None:
    item = await create(client, alice, "Book", "A nice book")

    response = await client.patch(
        f"/items/{item['id']}", json={"name": "Novel"}, headers=alice.headers
    )

    assert response.status_code == 200
    patched = await response.get_json()
    assert patched["name"] == "Novel"
    assert patched["description"] == "A nice book"

    response = await client.patch(
        f"/items/{item['id']}", json={"description": "Long"}, headers=alice.headers
    )
    assert (await response.get_json())["name"] == "Novel"
    assert (await response.get_json())["description"] == "Long"


async def test_patch_with_description_null_clears_it(client: Client, alice: Account) -> None:
    item = await create(client, alice, "Book", "A nice book")

    response = await client.patch(
        f"/items/{item['id']}", json={"description": None}, headers=alice.headers
    )

    assert response.status_code == 200
    assert (await response.get_json())["description"] is None
    assert (await response.get_json())["name"] == "Book"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": None}, id="name-null"),
        pytest.param({"name": ""}, id="name-empty"),
        pytest.param({"name": "x" * 201}, id="name-too-long"),
        pytest.param({"name": 5}, id="name-number"),
        pytest.param({"description": ["a"]}, id="description-list"),
        pytest.param({"version": 7}, id="unknown-field"),
    ],
)
async def test_patch_refuses_invalid_fields(client: Client, alice: Account, body: Any) -> None:
    item = await create(client, alice, "Book", "A nice book")

    response = await client.patch(f"/items/{item['id']}", json=body, headers=alice.headers)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert (await response.get_json())["errors"]
    assert (await (await fetch(client, alice, item["id"])).get_json()) == item


async def test_every_change_gives_a_new_etag(client: Client, alice: Account) -> None:
    response = await client.post("/items", json={"name": "Book"}, headers=alice.headers)
    item_id = (await response.get_json())["id"]
    tags = [response.headers["ETag"]]
    for change in ({"name": "Novel"}, {"description": "x"}):
        patched = await client.patch(f"/items/{item_id}", json=change, headers=alice.headers)
        tags.append(patched.headers["ETag"])
    put = await client.put(f"/items/{item_id}", json={"name": "Book"}, headers=alice.headers)
    tags.append(put.headers["ETag"])

    assert len(set(tags)) == 4
    assert (await fetch(client, alice, item_id)).headers["ETag"] == tags[-1]


@pytest.mark.parametrize(
    ("name", "description"),
    [
        pytest.param("n" * 200, "d" * 10_000, id="longest"),
        pytest.param("\U0001f4da" * 200, "\U0001f600" * 2_000, id="longest-astral"),
        pytest.param("x", "", id="shortest"),
        pytest.param("Caf\u00e9 \u2014 \u4e66", "line one\nline two\t\u00ff", id="unicode"),
    ],
)
async def test_item_text_is_stored_exactly_up_to_its_limits(
    client: Client, alice: Account, name: str, description: str
) -> None:
    item = await create(client, alice, name, description)

    stored = await (await fetch(client, alice, item["id"])).get_json()

    assert stored["name"] == name
    assert stored["description"] == description


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "n" * 201}, id="name-too-long"),
        pytest.param({"name": "\U0001f4da" * 201}, id="astral-name-too-long"),
        pytest.param({"name": "x", "description": "d" * 10_001}, id="description-too-long"),
    ],
)
async def test_item_text_over_its_limits_is_422(
    app: Quart, client: Client, alice: Account, body: dict[str, str]
) -> None:
    response = await client.post("/items", json=body, headers=alice.headers)

    assert response.status_code == 422
    assert await count_items(app) == 0


async def test_delete_item_then_it_is_gone(app: Quart, client: Client, alice: Account) -> None:
    item = await create(client, alice, "Book")

    response = await client.delete(f"/items/{item['id']}", headers=alice.headers)

    assert response.status_code == 204
    assert (await response.get_data()) == b""
    assert (await fetch(client, alice, item["id"])).status_code == 404
    again = await client.delete(f"/items/{item['id']}", headers=alice.headers)
    assert again.status_code == 404
    assert again.mimetype == "application/problem+json"
    assert await count_items(app) == 0


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
async def test_an_unknown_item_is_404(client: Client, alice: Account, method: str) -> None:
    response = await getattr(client, method)(
        f"/items/{uuid.uuid4()}", json={"name": "x"}, headers=alice.headers
    )
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


async def test_a_malformed_item_id_is_404(client: Client, alice: Account) -> None:
    response = await client.get("/items/not-an-id", headers=alice.headers)
    assert response.status_code == 404


async def test_the_trailing_slash_form_creates_and_lists(client: Client, alice: Account) -> None:
    created = await client.post("/items/", json={"name": "Book"}, headers=alice.headers)
    assert created.status_code == 201

    listed = await client.get("/items/", headers=alice.headers)

    assert listed.status_code == 200
    page = await listed.get_json()
    assert [item["id"] for item in page["items"]] == [(await created.get_json())["id"]]


# --- ownership ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("get", None),
        ("put", {"name": "Mine now"}),
        ("patch", {"name": "Mine now"}),
        ("delete", None),
    ],
)
async def test_another_users_item_is_not_found(
    client: Client, alice: Account, bob: Account, method: str, body: Any
) -> None:
    item = await create(client, alice, "Alice's", "private")
    before = await fetch(client, alice, item["id"])

    kwargs: dict[str, Any] = {"headers": bob.headers}
    if body is not None:
        kwargs["json"] = body
    response = await getattr(client, method)(f"/items/{item['id']}", **kwargs)

    assert response.status_code == 404
    unknown = await getattr(client, method)(f"/items/{uuid.uuid4()}", **kwargs)
    assert (await response.get_json()) == (await unknown.get_json())  # no existence leak
    after = await fetch(client, alice, item["id"])
    assert after.status_code == 200
    assert (await after.get_json()) == item
    assert after.headers["ETag"] == before.headers["ETag"]


async def test_another_users_item_is_not_found_even_with_if_match_star(
    client: Client, alice: Account, bob: Account
) -> None:
    item = await create(client, alice, "Alice's")

    response = await client.patch(
        f"/items/{item['id']}", json={"name": "x"}, headers=with_headers(bob, If_Match="*")
    )

    assert response.status_code == 404
    assert (await (await fetch(client, alice, item["id"])).get_json()) == item


async def test_the_list_shows_only_the_callers_items(
    client: Client, alice: Account, bob: Account
) -> None:
    mine = await create(client, alice, "Alice's")
    await create(client, bob, "Bob's")

    page = await (await client.get("/items", headers=alice.headers)).get_json()

    assert [item["id"] for item in page["items"]] == [mine["id"]]


# --- pagination -----------------------------------------------------------------------------


async def list_page(client: Client, account: Account, **query: Any) -> Any:
    response = await client.get("/items", query_string=query, headers=account.headers)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


async def all_pages(client: Client, account: Account, limit: int) -> list[str]:
    ids: list[str] = []
    page = await list_page(client, account, limit=limit)
    while True:
        ids += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            return ids
        page = await list_page(client, account, limit=limit, cursor=page["next_cursor"])


async def test_list_is_newest_first_with_a_default_page_of_20(
    client: Client, alice: Account
) -> None:
    created = [(await create(client, alice, f"item {n}"))["id"] for n in range(23)]

    page = await list_page(client, alice)

    assert [item["id"] for item in page["items"]] == created[::-1][:20]
    assert page["next_cursor"] is not None


async def test_paging_visits_every_item_once_and_ends_with_a_null_cursor(
    client: Client, alice: Account
) -> None:
    created = [(await create(client, alice, f"item {n}"))["id"] for n in range(7)]

    assert await all_pages(client, alice, limit=3) == created[::-1]
    assert await all_pages(client, alice, limit=7) == created[::-1]
    assert await all_pages(client, alice, limit=100) == created[::-1]


async def test_an_empty_list_has_no_cursor(client: Client, alice: Account) -> None:
    assert await list_page(client, alice) == {"items": [], "next_cursor": None}


async def test_a_full_last_page_has_a_null_cursor(client: Client, alice: Account) -> None:
    for n in range(4):
        await create(client, alice, f"item {n}")

    page = await list_page(client, alice, limit=4)

    assert len(page["items"]) == 4
    assert page["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", ""])
async def test_a_limit_out_of_bounds_is_422(client: Client, alice: Account, limit: str) -> None:
    response = await client.get("/items", query_string={"limit": limit}, headers=alice.headers)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [error["field"] for error in (await response.get_json())["errors"]] == ["limit"]


@pytest.mark.parametrize("limit", [1, 100])
async def test_the_limit_bounds_are_accepted(client: Client, alice: Account, limit: int) -> None:
    for n in range(2):
        await create(client, alice, f"item {n}")
    page = await list_page(client, alice, limit=limit)
    assert len(page["items"]) == min(limit, 2)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "é",
        "x" * 201,
        b64(b"not json"),
        b64(b"[]"),
        b64(b'["2024-01-01T00:00:00+00:00"]'),
        b64(b'["yesterday", "' + SOME_ID + b'"]'),
        b64(b'["2024-01-01T00:00:00", "' + SOME_ID + b'"]'),
        b64(b'["2024-01-01T00:00:00+00:00", "not-a-uuid"]'),
        b64(b"[1, 2]"),
        b64(b'{"a": 1, "b": 2}'),
        b64(b"\xff\xfe"),
        b64(b'["0001-01-01T00:00:00+05:00", "' + SOME_ID + b'"]'),
        b64(b'["9999-12-31T23:59:59-05:00", "' + SOME_ID + b'"]'),
        "abc\x00",
    ],
)
async def test_a_garbage_cursor_is_422(client: Client, alice: Account, cursor: str) -> None:
    await create(client, alice, "Book")

    response = await client.get("/items", query_string={"cursor": cursor}, headers=alice.headers)

    assert response.status_code == 422, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert [error["field"] for error in (await response.get_json())["errors"]] == ["cursor"]


async def test_items_created_in_the_same_instant_are_each_listed_once(
    app: Quart, client: Client, alice: Account
) -> None:
    instant = datetime.now(UTC)
    async with app.extensions["service"].db.write() as db:
        await db.run(
            insert(Item),
            [
                {
                    "id": uuid.uuid4(),
                    "owner_id": uuid.UUID(alice.id),
                    "name": f"twin {n}",
                    "version": 1,
                    "created_at": instant,
                    "updated_at": instant,
                }
                for n in range(5)
            ],
        )

    ids = await all_pages(client, alice, limit=1)

    assert len(ids) == len(set(ids)) == 5


async def test_paging_is_stable_under_concurrent_inserts(client: Client, alice: Account) -> None:
    existing = [(await create(client, alice, f"old {n}"))["id"] for n in range(10)]
    seen: list[str] = []

    page = await list_page(client, alice, limit=3)
    new_names = iter(range(100))
    while True:
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        # New items arrive while the next page is read, and between pages.
        results = await asyncio.gather(
            list_page(client, alice, limit=3, cursor=page["next_cursor"]),
            *(create(client, alice, f"new {next(new_names)}") for _ in range(3)),
        )
        page = results[0]
        await create(client, alice, f"new {next(new_names)}")

    assert seen == existing[::-1]
    assert len(await all_pages(client, alice, limit=100)) == 10 + next(new_names)


async def test_deleting_while_paging_skips_nothing_that_remains(
    client: Client, alice: Account
) -> None:
    existing = [(await create(client, alice, f"item {n}"))["id"] for n in range(6)]
    newest_first = existing[::-1]

    first = await list_page(client, alice, limit=2)
    # The last item of page one is deleted: the cursor still knows where it was.
    await client.delete(f"/items/{newest_first[1]}", headers=alice.headers)
    second = await list_page(client, alice, limit=2, cursor=first["next_cursor"])

    assert [item["id"] for item in second["items"]] == newest_first[2:4]


async def test_a_cursor_is_opaque_text(client: Client, alice: Account) -> None:
    for n in range(3):
        await create(client, alice, f"item {n}")
    cursor = (await list_page(client, alice, limit=1))["next_cursor"]
    assert isinstance(cursor, str)
    assert cursor.isascii()
    json.dumps(cursor)


# --- conditional requests -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_if_match_with_the_current_etag_succeeds(
    client: Client, alice: Account, method: str
) -> None:
    item = await create(client, alice, "Book")
    etag = (await fetch(client, alice, item["id"])).headers["ETag"]

    response = await getattr(client, method)(
        f"/items/{item['id']}", json={"name": "Novel"}, headers=with_headers(alice, If_Match=etag)
    )

    assert response.status_code == 200
    assert (await response.get_json())["name"] == "Novel"


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(
    client: Client, alice: Account, method: str
) -> None:
    item = await create(client, alice, "Book")
    stale = (await fetch(client, alice, item["id"])).headers["ETag"]
    current = await client.patch(
        f"/items/{item['id']}", json={"description": "edited"}, headers=alice.headers
    )
    edited = await current.get_json()

    response = await getattr(client, method)(
        f"/items/{item['id']}", json={"name": "Novel"}, headers=with_headers(alice, If_Match=stale)
    )

    assert response.status_code == 412
    assert response.mimetype == "application/problem+json"
    after = await fetch(client, alice, item["id"])
    assert (await after.get_json()) == edited
    assert after.headers["ETag"] == current.headers["ETag"]


@pytest.mark.parametrize(
    "if_match",
    ['W/"1"', '"999"', "garbage", '"1"x', "1"],
    ids=["weak", "unknown", "g", "j", "bare"],
)
async def test_if_match_that_names_no_current_version_is_412(
    client: Client, alice: Account, if_match: str
) -> None:
    item = await create(client, alice, "Book")

    response = await client.patch(
        f"/items/{item['id']}", json={"name": "x"}, headers=with_headers(alice, If_Match=if_match)
    )

    assert response.status_code == 412
    assert (await (await fetch(client, alice, item["id"])).get_json()) == item


async def test_if_match_accepts_a_list_of_etags(client: Client, alice: Account) -> None:
    item = await create(client, alice, "Book")
    etag = (await fetch(client, alice, item["id"])).headers["ETag"]

    response = await client.patch(
        f"/items/{item['id']}",
        json={"name": "x"},
        headers=with_headers(alice, If_Match=f'"999", {etag}'),
    )

    assert response.status_code == 200
    assert (await response.get_json())["name"] == "x"
    assert response.headers["ETag"] != etag  # a new version
    stored = await fetch(client, alice, item["id"])
    assert (await stored.get_json())["name"] == "x"
    assert stored.headers["ETag"] == response.headers["ETag"]


async def test_if_match_star_matches_any_existing_item(client: Client, alice: Account) -> None:
    item = await create(client, alice, "Book")
    await client.patch(f"/items/{item['id']}", json={"name": "Novel"}, headers=alice.headers)

    response = await client.put(
        f"/items/{item['id']}", json={"name": "Tome"}, headers=with_headers(alice, If_Match="*")
    )

    assert response.status_code == 200
    assert (await response.get_json())["name"] == "Tome"


async def test_if_match_star_on_a_missing_item_is_404(client: Client, alice: Account) -> None:
    response = await client.put(
        f"/items/{uuid.uuid4()}", json={"name": "x"}, headers=with_headers(alice, If_Match="*")
    )
    assert response.status_code == 404


async def test_concurrent_updates_with_one_etag_let_exactly_one_win(
    client: Client, alice: Account
) -> None:
    item = await create(client, alice, "Book")
    etag = (await fetch(client, alice, item["id"])).headers["ETag"]

    responses = await asyncio.gather(
        *(
            client.patch(
                f"/items/{item['id']}",
                json={"name": f"writer {n}"},
                headers=with_headers(alice, If_Match=etag),
            )
            for n in range(6)
        )
    )

    assert sorted(response.status_code for response in responses) == [200] + [412] * 5


# --- bearer authentication ------------------------------------------------------------------


ITEM_ROUTES = [
    ("get", "/items"),
    ("post", "/items"),
    ("get", "/items/{id}"),
    ("put", "/items/{id}"),
    ("patch", "/items/{id}"),
    ("delete", "/items/{id}"),
]


@pytest.mark.parametrize(("method", "path"), ITEM_ROUTES)
async def test_items_need_a_bearer_token(
    client: Client, alice: Account, method: str, path: str
) -> None:
    item = await create(client, alice, "Book")

    response = await getattr(client, method)(path.format(id=item["id"]), json={"name": "x"})

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="service"'
    assert "error" not in (await response.get_json())
    assert (await (await fetch(client, alice, item["id"])).get_json()) == item


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Bearer a.b.c",
        "bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer \u00e9.\u00e9.\u00e9",
        "Bearer " + "a" * 5000,
    ],
)
@pytest.mark.parametrize(("method", "path"), ITEM_ROUTES)
async def test_items_refuse_a_bad_token_with_invalid_token(
    client: Client, alice: Account, method: str, path: str, authorization: str
) -> None:
    item = await create(client, alice, "Book")

    response = await getattr(client, method)(
        path.format(id=item["id"]), json={"name": "x"}, headers={"Authorization": authorization}
    )

    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="service"')
    assert 'error="invalid_token"' in challenge
    assert (await response.get_json())["error"] == "invalid_token"


@pytest.mark.parametrize(
    "authorization", ["", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Token x"]
)
async def test_no_bearer_credentials_is_a_challenge_without_error(
    client: Client, authorization: str
) -> None:
    response = await client.get("/items", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="service"'


async def test_a_token_in_the_query_string_is_not_accepted(client: Client, alice: Account) -> None:
    for path in ("/items", "/me"):
        response = await client.get(path, query_string={"access_token": alice.access_token})
        assert response.status_code == 401
        assert "error" not in (await response.get_json())


async def test_a_token_in_a_form_body_is_not_accepted(client: Client, alice: Account) -> None:
    response = await client.post("/items", form={"access_token": alice.access_token, "name": "x"})
    assert response.status_code == 401


async def test_a_token_with_a_garbage_signature_is_refused(client: Client, alice: Account) -> None:
    header, payload, _ = alice.access_token.split(".")
    forged = f"{header}.{payload}.{b64(b'x' * 32)}"

    response = await client.get("/items", headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401


async def test_a_token_signed_with_another_key_is_refused(client: Client, alice: Account) -> None:
    """The token's own header and claims, validly signed (HS256) with a secret that is not ours:
    only the key can tell it apart."""
    header, payload, _ = alice.access_token.split(".")
    signing_input = f"{header}.{payload}".encode("ascii")
    other_key = b"another-secret-key-that-is-long-enough-0123456789"
    forged = f"{header}.{payload}.{b64(hmac.digest(other_key, signing_input, 'sha256'))}"
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] == "HS256"
    assert (await client.get("/items", headers=alice.headers)).status_code == 200

    response = await client.get("/items", headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
