"""The floor of the stack: Quart under Hypercorn answering ``GET /items/<id>`` with a constant.

No token, database, validation, error handling or logging: ``bench/run.py --floor`` measures
it beside the seed, so a run shows what Quart and Hypercorn alone cost on the machine, the
ceiling for any service built on them.
"""

from __future__ import annotations

from typing import Any

from quart import Quart

app = Quart(__name__)


@app.get("/items/<item_id>")
async def read_item(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "name": "Book", "description": "A nice book", "version": 1}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
