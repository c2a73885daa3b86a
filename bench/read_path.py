"""In-process cost of the data layer's hottest call: one planned read through ``db.read()``.

    uv run python bench/read_path.py . sqlite:///path/to/migrated.db
    /work/main/.venv/bin/python bench/read_path.py /work/main sqlite:///path/to/migrated.db
    uv run python bench/read_path.py . postgresql://... DATABASE_FAST_PATH=false

The shape of the session check and of ``GET /items/{id}``'s item read: a primary-key
``SELECT`` built once with ``bindparam``, in its own ``read()`` block, 20,000 times after a
warm-up; prints the process's CPU microseconds per read (``time.process_time``, every thread,
so aiosqlite's too). No HTTP server and no other request compete, so two builds (the first
argument is the checkout whose ``service`` package is imported; run it with that checkout's
interpreter) or two settings (``KEY=VALUE`` arguments) compare on a busy machine. The
database must be migrated (``service migrate``); the row is never found, as the figure is
the path's, not the table's.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

ROOT, DATABASE_URL, *SETTINGS = sys.argv[1:]
sys.path.insert(0, ROOT)
for pair in SETTINGS:
    key, _, value = pair.partition("=")
    os.environ[key] = value

from sqlalchemy import bindparam, select  # noqa: E402

from service.config import Settings  # noqa: E402
from service.db import Database  # noqa: E402
from service.db.models import Item  # noqa: E402

STATEMENT = select(Item.id, Item.name, Item.version).where(Item.id == bindparam("id"))
READS = 20_000
WARM_UP = 2_000


async def cost_per_read() -> float:
    settings = Settings(
        _env_file=None,
        database_url=DATABASE_URL,
        app_env="testing",
        secret_key="bench-" * 11,
        mfa_encryption_key="A" * 43 + "=",
    )
    db = Database(settings)
    params = {"id": uuid.uuid4()}
    try:
        for _ in range(WARM_UP):
            async with db.read() as reader:
                await reader.first(STATEMENT, params)
        started = time.process_time()
        for _ in range(READS):
            async with db.read() as reader:
                await reader.first(STATEMENT, params)
        return (time.process_time() - started) / READS * 1e6
    finally:
        await db.dispose()


if __name__ == "__main__":
    print(f"{asyncio.run(cost_per_read()):.1f} us of CPU per read")
