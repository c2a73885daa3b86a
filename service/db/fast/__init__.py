"""The optional fast path of the data layer, behind one interface (``FastPath``).

The plain path (``service.db``: SQLAlchemy's pool, a checkout per ``read()`` block) is what
the code means; this package only makes the same reads cheaper, and ``DATABASE_FAST_PATH``
turns it off. What it holds:

- prepared plans (``prepared``): SELECTs built once, run on the driver itself;
- on PostgreSQL (``postgres``), a reader that runs planned SELECTs with asyncpg's
  ``fetchrow`` and the read lane (``read_lane``), a few long-lived connections that planned
  reads borrow one statement at a time;
- on SQLite (``sqlite_inline``), a synchronous ``query_only`` reader on the event loop;
- the ``LISTEN`` listener (``listener``) and the live-session memory it keeps exact
  (``live_sessions``), so that most authenticated requests skip the session query.

Every use of a library's private attribute is in ``service.db.library_internals``.
"""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.db.fast.path import FastPath
from service.db.fast.postgres import PostgresFastPath
from service.db.fast.sqlite_inline import InlineSQLiteFastPath

__all__ = ["FastPath", "build"]


def build(settings: Settings, engine: AsyncEngine, url: URL) -> FastPath | None:
    """The fast path of the database at ``url`` (``engine`` is its pool), or None when
    ``DATABASE_FAST_PATH`` is off."""
    if not settings.database_fast_path:
        return None
    if url.get_backend_name() == "sqlite":
        return InlineSQLiteFastPath(settings, url)
    return PostgresFastPath(settings, engine)
