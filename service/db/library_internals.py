"""Every use of a library's private attribute in the data layer, in one place.

SQLAlchemy's pool keeps two things the data layer needs and does not publish:

- ``Pool._invalidate(connection, _checkin=False)``: the pool's own reaction to a disconnect,
  used when a connection was found closed outside a statement that SQLAlchemy ran (a write's
  ping, a planned read on the driver itself). It invalidates that connection and marks every
  pooled connection opened before now for replacement at its next checkout, as SQLAlchemy
  does after a disconnect it saw itself.
- ``Pool._invalidate_time`` and a checked-out connection's ``_connection_record.starttime``:
  when the pool was last invalidated and when a connection was opened. The read lane keeps
  connections checked out for a long time and ages them out by the test a checkout applies.

Checked against exactly the versions in ``CHECKED_AGAINST``; ``tests/test_fast_path.py``
fails when the installed ones differ, so that an upgrade is a reason to read these again.
"""

from __future__ import annotations

from sqlalchemy.pool import Pool, PoolProxiedConnection

#: The versions the uses below were checked against (the module doc).
CHECKED_AGAINST = {"sqlalchemy": "2.1.9"}


def invalidate_pool(pool: Pool, connection: PoolProxiedConnection) -> None:
    """Throw ``connection`` away (its slot stays checked out until closed) and have the pool
    replace every connection opened before now when it is next checked out."""
    pool._invalidate(connection, _checkin=False)


def opened_at(connection: PoolProxiedConnection) -> float | None:
    """When the pool opened ``connection`` (``time.time()``), or None if it cannot tell."""
    record = getattr(connection, "_connection_record", None)
    return None if record is None else float(record.starttime)


def pool_invalidated_at(pool: Pool) -> float:
    """When the pool was last invalidated (``time.time()``), 0 if never."""
    return float(getattr(pool, "_invalidate_time", 0))
