"""A worker's memory of login sessions it found live, forgotten the moment any instance revokes.

Every authenticated request checks its session
(``service.sessions.queries.live_session_end``) so that a revocation (logout, a password
change, refresh-token reuse, a disabled or deleted account) stops the session's access tokens
at once. On PostgreSQL that check is a round trip per request. ``LiveSessions`` answers it
from memory instead, and stays exact because every revocation announces the account in its
own transaction (``service.sessions.queries.announce_revoked``, ``NOTIFY``), which PostgreSQL
delivers to every worker's listener when, and only if, it commits
(``service.db.fast.listener``):

- **Only while listening, and only on a short lease.** An answer comes from memory only while
  this worker's listener has ``LISTEN`` in force, has not lost its connection since the
  answer was stored, and has proved within ``LEASE`` (1 s) that notices arrive (a probe of
  its own heard back, which comes after everything committed before it). On a gap everything
  is forgotten; without a recent proof (a stalled listener) each request asks the database
  again, as on SQLite, until the next proof.
- **No stale answer survives a race.** A read of the database that started before a notice
  arrived is not stored: ``epoch`` counts notices and gaps, and ``remember`` stores only if
  it has not moved since the caller took it before its read.
- **Bounded.** An entry ends with its session (``expires_at``) and after ``ttl`` seconds
  at most; at most ``size`` sessions are kept, the least recently used go first.

**The window.** The revoking worker forgets at its own commit, so it refuses the session at
once, and it answers only after its own listener has heard the notice (or after 1 s, or when
the request's database time is up). Every other worker refuses it as soon as its listener has
the notice: PostgreSQL signals every listening session at commit and each one's backend sends
it on when it gets to it, usually within milliseconds; never later than ``LEASE`` after the
commit, because a probe sent after the commit comes back only after the notice (notices
arrive in commit order). A request that reaches another worker inside that window is still
answered. ``SESSION_CACHE=false`` closes
it: every request asks the database, at one indexed read per request.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.db import Database
    from service.db.fast.listener import Listener

#: The channel every revocation is announced on; its payload is the account's id.
CHANNEL = "service_sessions_revoked"
#: The longest a session stays in memory (a backstop: notices keep the memory exact).
TTL = 60.0
#: Seconds the memory may answer after the listener last proved that notices arrive (its
#: probes come every 0.25 s and may take 0.75 s: ``service.db.fast.listener``).
LEASE = 1.0


def notice(user_id: uuid.UUID) -> str:
    """The payload announcing that ``user_id``'s sessions ended: the account, and a nonce
    that makes it this transaction's own (the writer waits to hear exactly it)."""
    return f"{user_id} {secrets.token_hex(8)}"


class LiveSessions:
    """Sessions found live, by id (see the module doc)."""

    def __init__(self, *, ttl: float, lease: float = LEASE, size: int = 10_000) -> None:
        self._ttl = ttl
        self._lease = lease
        self._size = size
        #: session id -> (user id, expires_at, monotonic time it was stored)
        self._entries: OrderedDict[uuid.UUID, tuple[uuid.UUID, datetime, float]] = OrderedDict()
        self._by_user: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._listening = False
        #: Until when (``time.monotonic()``) the listener's last proof lets memory answer.
        self._answer_until = 0.0
        #: Moves on every notice and every gap: reads older than a move are not stored.
        self.epoch = 0

    @property
    def listening(self) -> bool:
        return self._listening

    def knows_live(self, session_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> bool:
        """Whether the session is known live for this user now, without asking the database."""
        if not self._listening or time.monotonic() >= self._answer_until:
            return False
        entry = self._entries.get(session_id)
        if entry is None:
            return False
        owner, expires_at, stored = entry
        if expires_at <= now or time.monotonic() - stored > self._ttl:
            self._drop(session_id)
            return False
        if owner != user_id:
            return False
        self._entries.move_to_end(session_id)
        return True

    def remember(
        self, session_id: uuid.UUID, user_id: uuid.UUID, expires_at: datetime, epoch: int
    ) -> None:
        """Store a session the database just found live, if nothing moved since ``epoch``."""
        if not self._listening or epoch != self.epoch:
            return
        self._drop(session_id)
        self._entries[session_id] = (user_id, expires_at, time.monotonic())
        self._by_user.setdefault(user_id, set()).add(session_id)
        while len(self._entries) > self._size:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def revoked(self, payload: str) -> None:
        """A notice: forget every session of the account ``payload`` names (all, if unclear)."""
        self.epoch += 1
        try:
            user_id = uuid.UUID(payload.split(" ", 1)[0])
        except ValueError:
            self._forget_all()
            return
        for session_id in self._by_user.pop(user_id, set()):
            self._entries.pop(session_id, None)

    def started_listening(self) -> None:
        self.epoch += 1
        self._listening = True

    def proven(self) -> None:
        """The listener has just seen a notice arrive: memory may answer for ``LEASE``."""
        self._answer_until = time.monotonic() + self._lease

    def gap(self) -> None:
        """Notices may be missed from now on: forget everything and ask the database."""
        self._listening = False
        self._answer_until = 0.0
        self.epoch += 1
        self._forget_all()

    def __len__(self) -> int:
        return len(self._entries)

    def _forget_all(self) -> None:
        self._entries.clear()
        self._by_user.clear()

    def _drop(self, session_id: uuid.UUID) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            sessions = self._by_user.get(entry[0])
            if sessions is not None:
                sessions.discard(session_id)
                if not sessions:
                    del self._by_user[entry[0]]


def watch_sessions(db: Database) -> tuple[LiveSessions, Listener] | None:
    """A memory of live sessions and the listener that keeps it exact; None on SQLite or
    without the fast path (``DATABASE_FAST_PATH``), where nobody listens."""
    memory = LiveSessions(ttl=TTL)
    listener = db.listener(
        CHANNEL,
        on_notice=memory.revoked,
        on_listening=memory.started_listening,
        on_proof=memory.proven,
        on_gap=memory.gap,
    )
    return None if listener is None else (memory, listener)
