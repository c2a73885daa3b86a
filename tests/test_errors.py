"""Error responses: one problem+json shape, the right status for each kind of bad request,
nothing leaked, and 503 (never 401 or invalid_grant) while the database is away."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from service import create_app
from service.config import Settings
from service.db.migrate import upgrade
from service.db.models import Item, User
from service.items import queries as item_queries
from tests.helpers import (
    Account,
    drop_postgres_database,
    execute_as_postgres_admin,
    make_settings,
    postgres_admin_url,
    sign_up,
)

PROBLEM_FIELDS = {"type", "title", "status", "detail"}
LEAKS = ("Traceback", 'File "', "SELECT", "INSERT", "UPDATE ", "sqlalchemy", "asyncpg", "sqlite3")


async def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = await response.get_json()
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert response.headers.get("X-Request-ID")
    text = await response.get_data(as_text=True)
    for leak in LEAKS:
        assert leak not in text
    return body


async def count(app: Quart, table: Any) -> int:
    async with app.extensions["service"].db.read() as db:
        found: int = await db.scalar(select(func.count()).select_from(table))
    return found


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/.env", "/signup/extra"])
async def test_an_unknown_route_is_a_problem_404(client: Client, path: str) -> None:
    await assert_problem(await client.get(path), 404)


async def test_an_unknown_route_under_a_protected_prefix_is_a_404_once_authenticated(
    client: Client, alice: Account
) -> None:
    """Without a token it is a 401 (``tests/test_authentication_first.py``)."""
    await assert_problem(await client.get("/items/x/y", headers=alice.headers), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/signup"), ("delete", "/login"), ("put", "/refresh"), ("post", "/healthz")],
)
async def test_a_wrong_method_is_a_problem_405_with_allow(
    client: Client, method: str, path: str
) -> None:
    response = await getattr(client, method)(path)

    await assert_problem(response, 405)
    assert response.headers["Allow"]


async def test_a_wrong_method_on_items_is_401_then_405_once_authenticated(
    client: Client, alice: Account
) -> None:
    """Authentication comes before routing, so an anonymous caller learns no route's methods."""
    await assert_problem(await client.delete("/items"), 401)
    response = await client.delete("/items", headers=alice.headers)
    await assert_problem(response, 405)
    assert response.headers["Allow"]


# --- request bodies -------------------------------------------------------------------------


@pytest.fixture
def limit(settings: Settings) -> int:
    return settings.max_body_bytes


async def test_a_json_body_over_the_limit_is_413(
    app: Quart, client: Client, alice: Account, limit: int
) -> None:
    body = {"name": "big", "description": "x" * limit}

    response = await client.post("/items", json=body, headers=alice.headers)

    await assert_problem(response, 413)
    assert await count(app, Item) == 0


async def test_a_signup_body_over_the_limit_is_413(app: Quart, client: Client, limit: int) -> None:
    response = await client.post(
        "/signup", json={"username": "alice", "password": "p" * 20, "pad": "x" * limit}
    )
    await assert_problem(response, 413)
    assert await count(app, User) == 0


async def test_a_login_form_over_the_limit_is_413(client: Client, limit: int) -> None:
    response = await client.post(
        "/login", form={"username": "alice", "password": "p" * 20, "pad": "x" * limit}
    )
    await assert_problem(response, 413)


async def test_a_body_just_under_the_limit_is_read(
    client: Client, alice: Account, limit: int
) -> None:
    response = await client.post(
        "/items", json={"name": "big", "padding": "x" * (limit - 100)}, headers=alice.headers
    )
    # Read and refused by the schema (unknown field), not by the size limit.
    await assert_problem(response, 422)


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", '{"name": "Book"}'),
        ("application/x-www-form-urlencoded", "name=Book"),
        ("application/xml", "<name>Book</name>"),
        (None, '{"name": "Book"}'),
    ],
)
async def test_a_wrong_content_type_on_a_json_route_is_415(
    app: Quart, client: Client, alice: Account, content_type: str | None, data: str
) -> None:
    headers = dict(alice.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = await client.post("/items", data=data, headers=headers)

    await assert_problem(response, 415)
    assert await count(app, Item) == 0


async def test_signup_with_a_form_is_415(app: Quart, client: Client) -> None:
    response = await client.post(
        "/signup", form={"username": "alice", "password": "quiet-harbour-lantern"}
    )
    await assert_problem(response, 415)
    assert await count(app, User) == 0


async def test_json_with_a_charset_or_a_json_suffix_is_accepted(
    client: Client, alice: Account
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = await client.post(
            "/items",
            data='{"name": "Book"}',
            headers=alice.headers | {"Content-Type": content_type},
        )
        assert response.status_code == 201


@pytest.mark.parametrize(
    "data",
    [
        b'{"name": ',
        b"{'name': 'Book'}",
        b'{"name": "Book",}',
        b"",
        b"\xff\xfe{}",
        b'{"name": "Bo\xffok"}',
        b"NaN-ish",
    ],
    ids=["truncated", "single-quotes", "trailing-comma", "empty", "bom-garbage", "bad-utf8", "x"],
)
async def test_malformed_json_is_400(
    app: Quart, client: Client, alice: Account, data: bytes
) -> None:
    response = await client.post(
        "/items", data=data, headers=alice.headers | {"Content-Type": "application/json"}
    )

    body = await assert_problem(response, 400)
    assert "errors" not in body
    assert await count(app, Item) == 0


@pytest.mark.parametrize(
    "data",
    ["null", "[]", '"Book"', "42", '{"name": 42}', '{"name": "x", "owner_id": "y"}'],
)
async def test_a_schema_violation_is_422_with_the_failing_fields(
    app: Quart, client: Client, alice: Account, data: str
) -> None:
    response = await client.post(
        "/items", data=data, headers=alice.headers | {"Content-Type": "application/json"}
    )

    body = await assert_problem(response, 422)
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"field", "message"}
        assert isinstance(error["field"], str)
        assert isinstance(error["message"], str)
    assert await count(app, Item) == 0


async def test_a_422_names_each_failing_field(client: Client, alice: Account) -> None:
    response = await client.post(
        "/items", json={"name": "", "description": 5, "colour": "red"}, headers=alice.headers
    )

    body = await assert_problem(response, 422)
    assert {error["field"] for error in body["errors"]} == {"name", "description", "colour"}


async def test_422_messages_read_as_plain_text(client: Client, alice: Account) -> None:
    response = await client.post(
        "/items", json={"name": "", "description": "a\x00b"}, headers=alice.headers
    )

    messages = {error["field"]: error["message"] for error in (await response.get_json())["errors"]}
    assert messages == {
        "name": "String should have at least 1 character",
        "description": "must not contain NUL characters",
    }


NUL_AND_SURROGATES = [
    pytest.param("Bo\x00ok", id="nul"),
    pytest.param("\x00", id="only-nul"),
    pytest.param("Bo\ud800ok", id="lone-high-surrogate"),
    pytest.param("Bo\udc00ok", id="lone-low-surrogate"),
]


@pytest.mark.parametrize("name", NUL_AND_SURROGATES)
@pytest.mark.parametrize("field", ["name", "description"])
async def test_an_item_string_with_nul_or_a_lone_surrogate_is_422_and_not_stored(
    app: Quart, client: Client, alice: Account, field: str, name: str
) -> None:
    body = {"name": "Book", field: name}

    response = await client.post(
        "/items",
        data=json.dumps(body),  # escapes them as \u0000 and \ud800, as a client would
        headers=alice.headers | {"Content-Type": "application/json"},
    )

    problem = await assert_problem(response, 422)
    assert [error["field"] for error in problem["errors"]] == [field]
    assert await count(app, Item) == 0


@pytest.mark.parametrize("name", NUL_AND_SURROGATES)
@pytest.mark.parametrize("method", ["put", "patch"])
async def test_an_update_with_nul_or_a_lone_surrogate_is_422_and_changes_nothing(
    client: Client, alice: Account, method: str, name: str
) -> None:
    created = await client.post("/items", json={"name": "Book"}, headers=alice.headers)
    item = await created.get_json()

    response = await getattr(client, method)(
        f"/items/{item['id']}",
        data=json.dumps({"name": name}),
        headers=alice.headers | {"Content-Type": "application/json"},
    )

    await assert_problem(response, 422)
    after = await client.get(f"/items/{item['id']}", headers=alice.headers)
    assert (await after.get_json()) == item


async def test_a_nul_in_a_query_parameter_is_422(client: Client, alice: Account) -> None:
    response = await client.get("/items", query_string={"cursor": "ab\x00c"}, headers=alice.headers)
    await assert_problem(response, 422)


# --- nothing leaks --------------------------------------------------------------------------


async def test_no_error_body_or_log_shows_the_submitted_password(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Unmistakable-Passw0rd-" + secrets.token_hex(4)
    caplog.set_level(logging.DEBUG, logger="service")  # caplog is attached to it by pytest
    attempts = [
        await client.post("/signup", json={"username": "a", "password": password}),
        await client.post("/signup", json={"username": "alice", "password": password * 50}),
        await client.post("/signup", json={"username": "alice", "password": password, "x": 1}),
        await client.post("/signup", json={"username": "alice", "password": [password]}),
        await client.post("/login", form={"username": "nobody", "password": password}),
        await client.post("/login", json={"username": ["x"], "password": password}),
        await client.post("/login", json={"username": "x", "password": password + "\x00"}),
    ]
    await sign_up(client, "alice", password)
    attempts += [
        await client.post("/signup", json={"username": "ALICE", "password": password}),
        await client.post("/login", form={"username": "alice", "password": password + "!"}),
    ]

    for response in attempts:
        assert response.status_code in {400, 409, 422}
        text = await response.get_data(as_text=True)
        assert password not in text
        await assert_problem(response, response.status_code)
    assert any(record.name == "service.access" for record in caplog.records)  # it did capture
    assert password not in caplog.text


async def test_an_unexpected_error_is_a_bare_500(
    client: Client, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("SELECT password_hash FROM users -- secret internals")

    monkeypatch.setattr(item_queries, "select_items_page", broken)

    response = await client.get("/items", headers=alice.headers)

    body = await assert_problem(response, 500)
    assert "secret internals" not in json.dumps(body)
    assert "password_hash" not in json.dumps(body)


# --- the database away ----------------------------------------------------------------------


@pytest.fixture
async def unopenable_sqlite(tmp_path: Path) -> str:
    """A SQLite URL whose file cannot be opened: a directory stands where the file should be."""
    path = tmp_path / "gone.db"
    path.mkdir()
    return f"sqlite:///{path}"


def closed_port_url() -> str:
    return make_url(postgres_admin_url()).set(port=1).render_as_string(hide_password=False)


def missing_database_url() -> str:
    url = make_url(postgres_admin_url()).set(database=f"missing_{secrets.token_hex(6)}")
    return url.render_as_string(hide_password=False)


@contextmanager
def failed_sqlite_connections_finish() -> Iterator[None]:
    """Wait for the worker threads of SQLite connections that failed to open to end.

    aiosqlite queues the clean-up of a connection that failed to open without awaiting it; if
    the test's event loop closed first, the thread would fail to report back to it.
    """
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)


@pytest.fixture(params=["sqlite-unopenable", "postgresql-closed-port", "postgresql-missing-db"])
async def down_app(request: pytest.FixtureRequest, unopenable_sqlite: str) -> AsyncIterator[Quart]:
    """The service with the same secret as ``app`` but a database that does not answer."""
    url = {
        "sqlite-unopenable": unopenable_sqlite,
        "postgresql-closed-port": closed_port_url(),
        "postgresql-missing-db": missing_database_url(),
    }[request.param]
    app = create_app(make_settings(url, db_pool_timeout=2))
    with failed_sqlite_connections_finish():
        async with app.test_app():
            yield app


async def assert_unavailable(response: Any) -> None:
    body = await assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    assert "error" not in body
    assert "WWW-Authenticate" not in response.headers


async def test_readyz_is_503_while_the_database_is_down(down_app: Quart) -> None:
    client = down_app.test_client()
    await assert_unavailable(await client.get("/readyz"))
    assert (await client.get("/healthz")).status_code == 200


async def test_a_valid_access_token_gets_503_not_401_while_the_database_is_down(
    alice: Account, down_app: Quart
) -> None:
    client = down_app.test_client()
    item_id = "0b4c3a52-5f0e-4b8a-9d43-4f6e2a1c7d90"
    for method, path in [
        ("get", "/items"),
        ("post", "/items"),
        ("get", f"/items/{item_id}"),
        ("patch", f"/items/{item_id}"),
        ("delete", f"/items/{item_id}"),
        ("get", "/me"),
    ]:
        response = await getattr(client, method)(path, json={"name": "x"}, headers=alice.headers)
        await assert_unavailable(response)


async def test_a_valid_refresh_token_gets_503_not_invalid_grant_while_the_database_is_down(
    alice: Account, down_app: Quart
) -> None:
    response = await down_app.test_client().post(
        "/refresh", json={"refresh_token": alice.refresh_token}
    )
    await assert_unavailable(response)


async def test_login_and_signup_get_503_while_the_database_is_down(down_app: Quart) -> None:
    client = down_app.test_client()
    form = {"username": "alice", "password": "quiet-harbour-lantern"}
    await assert_unavailable(await client.post("/login", form=form))
    await assert_unavailable(await client.post("/signup", json=form))


async def test_the_refresh_token_still_works_once_the_database_is_back(
    app: Quart, client: Client, alice: Account, down_app: Quart
) -> None:
    await down_app.test_client().post("/refresh", json={"refresh_token": alice.refresh_token})

    # The outage did not spend or revoke anything.
    assert (
        await client.post("/refresh", json={"refresh_token": alice.refresh_token})
    ).status_code == 200


async def test_the_service_recovers_when_a_sqlite_database_returns(tmp_path: Path) -> None:
    path = tmp_path / "service.db"
    path.mkdir()
    url = f"sqlite:///{path}"
    app = create_app(make_settings(url))
    with failed_sqlite_connections_finish():
        async with app.test_app() as test_app:
            client = test_app.test_client()
            await assert_unavailable(await client.get("/readyz"))
            login = {"username": "alice", "password": "quiet-harbour-lantern"}
            await assert_unavailable(await client.post("/login", form=login))

            path.rmdir()
            await asyncio.to_thread(upgrade, make_settings(url))

            assert (await client.get("/readyz")).status_code == 200
            await sign_up(client, "alice")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_service_recovers_when_a_postgresql_database_returns(database_url: str) -> None:
    """(``database_url`` only makes this run, or skip, with the PostgreSQL half.)"""
    url = missing_database_url()
    app = create_app(make_settings(url))
    try:
        async with app.test_app() as test_app:
            client = test_app.test_client()
            await assert_unavailable(await client.get("/readyz"))
            signup = {"username": "alice", "password": "quiet-harbour-lantern"}
            await assert_unavailable(await client.post("/signup", json=signup))

            await execute_as_postgres_admin(f'CREATE DATABASE "{make_url(url).database}"')
            await asyncio.to_thread(upgrade, make_settings(url))

            assert (await client.get("/readyz")).status_code == 200
            await sign_up(client, "alice")
    finally:
        await asyncio.to_thread(drop_postgres_database, url)


async def test_an_exhausted_connection_pool_gives_503_then_recovers(
    app: Quart, settings: Settings
) -> None:
    small = create_app(make_settings(settings.database_url, db_pool_size=1, db_pool_timeout=0.2))
    async with small.test_app() as test_app:
        client = test_app.test_client()
        account = await sign_up(client, "alice")
        engine = small.extensions["service"].db.engine

        async with engine.connect() as held:  # the pool's only connection, busy elsewhere
            await held.exec_driver_sql("SELECT 1")
            response = await client.post("/items", json={"name": "Book"}, headers=account.headers)
            await assert_unavailable(response)
            refresh = await client.post("/refresh", json={"refresh_token": account.refresh_token})
            await assert_unavailable(refresh)

        response = await client.post("/items", json={"name": "Book"}, headers=account.headers)
        assert response.status_code == 201
        # The refresh token was not spent by the refused attempt.
        refresh = await client.post("/refresh", json={"refresh_token": account.refresh_token})
        assert refresh.status_code == 200
    assert await count(app, Item) == 1


@pytest.mark.serial  # bounds the time to the 503
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_busy_sqlite_database_gives_503_then_recovers(
    app: Quart, alice: Account, database_url: str
) -> None:
    # Writers wait DB_STATEMENT_TIMEOUT (0.2 s here) for the lock another process holds.
    impatient = create_app(make_settings(database_url, db_statement_timeout=0.2))
    path = make_url(database_url).database
    assert path is not None
    async with impatient.test_app() as test_app:
        client = test_app.test_client()
        other_process = sqlite3.connect(path, isolation_level=None)
        try:
            other_process.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            response = await client.post("/items", json={"name": "Book"}, headers=alice.headers)
            await assert_unavailable(response)
            assert time.monotonic() - started < 2
            # Reads never wait for a writer (WAL).
            assert (await client.get("/items", headers=alice.headers)).status_code == 200
        finally:
            other_process.execute("ROLLBACK")
            other_process.close()

        response = await client.post("/items", json={"name": "Book"}, headers=alice.headers)
        assert response.status_code == 201
    assert await count(app, Item) == 1
