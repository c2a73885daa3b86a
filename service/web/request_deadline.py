"""Each request's database deadline (``service.db.deadline``), started as the request starts.

The first ``before_request`` hook after the access log's, so the bearer check, the first
database call of most requests, already runs on it.
"""

from __future__ import annotations

from quart import Quart

from service.db import deadline


def init_app(app: Quart, seconds: float) -> None:
    """Give every request of ``app`` ``seconds`` (``DB_STATEMENT_TIMEOUT``) of database time."""

    async def start_database_deadline() -> None:
        deadline.start(seconds)

    app.before_request(start_database_deadline)
