"""The fast path is optional: the plain path serves alone, and library internals are pinned.

- With ``DATABASE_FAST_PATH=false`` no ``FastPath`` is built: reads check a connection out of
  the pool, nobody listens and sessions are checked in the database, on both backends, and
  the answers are the same (sign-up, items, a revocation refused at once).
- On PostgreSQL the plain path's read survives a connection the server closed, as the fast
  path's does (the pool has no pre-ping either way).
- Every use of a library's private attribute in ``service/db`` is in
  ``service.db.library_internals``, whose ``CHECKED_AGAINST`` names the installed versions.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from service.db import Database
from service.db.fast import FastPath
from service.db.fast.postgres import PostgresFastPath
from service.db.fast.sqlite_inline import InlineSQLiteFastPath
from service.db.library_internals import CHECKED_AGAINST
from service.db.postgres import connect_outside_pool
from service.db.units import Reader, RetryingReader
from service.services import services
from tests.helpers import AppFactory, make_settings, sign_up
from tests.session_helpers import assert_access_refused, assert_access_works, bearer

DATA_LAYER = Path(__file__).resolve().parent.parent / "service" / "db"
INTERNALS = DATA_LAYER / "library_internals.py"


def test_library_internals_were_checked_against_the_installed_versions() -> None:
    """A new SQLAlchemy may rename or change what ``library_internals`` reaches into."""
    installed = {name: importlib.metadata.version(name) for name in CHECKED_AGAINST}
    assert installed == CHECKED_AGAINST, (
        "a library changed: check each use in service/db/library_internals.py against the new "
        "version (some may now be public), then update CHECKED_AGAINST."
    )


def private_uses(path: Path) -> list[str]:
    """Attributes starting with one ``_`` read off anything but ``self``, ``cls`` or
    ``super()``, ``getattr`` with such a name and such keyword arguments, in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            owner = node.value
            ours = (isinstance(owner, ast.Name) and owner.id in {"self", "cls"}) or (
                isinstance(owner, ast.Call)
                and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"
            )
            if not node.attr.startswith("__") and not ours:
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
        ):
            found.append(f"{path.name}:{node.lineno} getattr {node.args[1].value!r}")
        elif isinstance(node, ast.keyword) and (node.arg or "").startswith("_"):
            found.append(f"{path.name}:{node.lineno} {node.arg}=")
    return found


def test_library_privates_are_used_in_one_module_only() -> None:
    elsewhere = [
        use
        for path in sorted(DATA_LAYER.rglob("*.py"))
        if path != INTERNALS and "migrations" not in path.parts
        for use in private_uses(path)
    ]
    assert elsewhere == [], "move these into service/db/library_internals.py"
    assert private_uses(INTERNALS), "the walk should see the module's own uses"


async def test_the_fast_path_is_built_per_backend_and_only_when_on(
    backend: str, database_url: str
) -> None:
    on = Database(make_settings(database_url, database_fast_path=True))
    off = Database(make_settings(database_url, database_fast_path=False))
    expected = InlineSQLiteFastPath if backend == "sqlite" else PostgresFastPath
    assert isinstance(on.fast, FastPath)
    assert isinstance(on.fast, expected)
    assert off.fast is None
    await on.dispose()
    await off.dispose()


async def test_plain_reads_check_a_connection_out_of_the_pool(make_app: AppFactory) -> None:
    app = await make_app(database_fast_path=False)
    db = services(app).db
    assert db.fast is None
    async with db.read() as reader:
        assert type(reader) in {Reader, RetryingReader}
        assert await reader.scalar(text("SELECT 1")) == 1
        assert db.engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert db.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_the_plain_path_serves_the_same_answers(make_app: AppFactory) -> None:
    app = await make_app(database_fast_path=False)
    assert services(app).live_sessions is None
    assert services(app).session_listener is None
    client = app.test_client()
    alice = await sign_up(client, f"plain-{uuid.uuid4().hex[:6]}")
    await assert_access_works(client, alice.access_token)
    created = await client.post(
        "/items/", json={"name": "Book", "description": "plain"}, headers=bearer(alice.access_token)
    )
    assert created.status_code == 201
    item = await created.get_json()
    read = await client.get(f"/items/{item['id']}", headers=bearer(alice.access_token))
    assert read.status_code == 200
    assert (await read.get_json())["name"] == "Book"
    missing = await client.get(f"/items/{uuid.uuid4()}", headers=bearer(alice.access_token))
    assert missing.status_code == 404
    await client.post("/logout", json={"refresh_token": alice.refresh_token})
    await assert_access_refused(client, alice.access_token)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_plain_read_survives_a_connection_the_server_closed(make_app: AppFactory) -> None:
    app = await make_app(database_fast_path=False, db_pool_size=1)
    db = services(app).db
    async with db.read() as reader:
        pid = await reader.scalar(text("SELECT pg_backend_pid()"))
    outside = await connect_outside_pool(services(app).settings, db.engine)
    try:
        # With a timeout, PostgreSQL returns once the backend has exited.
        assert await outside.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await outside.close()
    # Let the client see the socket close: in the instant before, asyncpg reports a protocol
    # state that only the fast path's planned reads tell apart from a timeout.
    await asyncio.sleep(0.2)
    async with db.read() as reader:  # the pool's one connection is the closed one
        assert await reader.scalar(text("SELECT pg_backend_pid()")) != pid
