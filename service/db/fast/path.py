"""The one interface between the plain path and the fast path: ``FastPath``.

``Database`` (``service.db.engine``) builds at most one ``FastPath`` (``service.db.fast.build``)
and asks it for every ``read()`` block, for a listener and, after a write that announced a
change, to wait until its own listener heard it. Without one (``DATABASE_FAST_PATH=false``)
reads go through SQLAlchemy's pool, nobody listens and sessions are checked in the database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from service.db.fast.listener import Listener
from service.db.units import Reader


class FastPath(ABC):
    """The faster way one database is read (PostgreSQL or SQLite: ``service.db.fast``)."""

    @abstractmethod
    def read(self) -> AbstractAsyncContextManager[Reader]:
        """A reader for one ``Database.read()`` block: same rows, same errors as the plain
        path's, each statement seeing committed data."""

    def listener(
        self,
        channel: str,
        *,
        on_notice: Callable[[str], None],
        on_listening: Callable[[], None],
        on_proof: Callable[[], None],
        on_gap: Callable[[], None],
    ) -> Listener | None:
        """A ``Listener`` on ``channel`` for ``Writer.announce``; None where nobody listens."""
        return None

    async def heard_by_all(self, channel: str, payload: str) -> None:
        """After a commit that announced ``payload`` on ``channel``: return once this
        process's own listener has heard it (at once where nobody listens)."""
        return

    @abstractmethod
    async def dispose(self) -> None:
        """Let every connection go (the app stops serving); a later read opens fresh ones."""
