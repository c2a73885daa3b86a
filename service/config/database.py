"""Database settings: where it is, its pool and timeouts, the session memory, and how long
rows that ended are kept."""

from __future__ import annotations

from pydantic import Field, field_validator

from service.config.environment import EnvironmentSettings


class DatabaseSettings(EnvironmentSettings):
    """``DATABASE_URL``, ``DB_*``, ``DATABASE_FAST_PATH``, ``SESSION_CACHE``,
    ``IDEMPOTENCY_KEY_TTL``, ``PURGE_AFTER``."""

    database_url: str = Field(
        "sqlite:///instance/service.db",
        description="sqlite:///path, postgresql://... or Heroku's postgres://...; required in "
        "production, where a SQLite file needs its path named.",
    )
    db_pool_size: int = Field(10, ge=1, le=100, description="Connections per worker (PostgreSQL).")
    db_pool_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds a request waits for a free pooled connection; then 503.",
    )
    db_statement_timeout: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Seconds a request may wait for the database, all its calls together "
        "(statements, commits, pings, waits for a connection; SQLite: a write's wait for the "
        "write lock); then 503 and a call cut short discards its connection. Outside a "
        "request (commands, the mail sender) each call gets this long. PostgreSQL: also its "
        "server-side `statement_timeout`.",
    )
    database_fast_path: bool = Field(
        True,
        description="The data layer's fast path: prepared plans run on the driver, a read "
        "lane of long-lived connections and the session memory with its LISTEN connection "
        "(PostgreSQL), reads inline on the event loop (SQLite). false: every read checks a "
        "connection out of the pool and every request checks its session in the database "
        "(SESSION_CACHE has no effect). Figures: docs/benchmark.md.",
    )
    session_cache: bool = Field(
        True,
        description="PostgreSQL: each worker remembers the sessions it found live and forgets "
        "them when any instance revokes one (LISTEN/NOTIFY, one more connection per worker), "
        "so most authenticated requests skip the session query; other workers refuse a revoked "
        "session as soon as the notice reaches them (milliseconds, at most 1 s). false: every "
        "request asks the database, and revocation is refused at once everywhere. SQLite "
        "always asks (its check costs microseconds).",
    )
    db_connect_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds to open a PostgreSQL connection (TCP and start-up); then 503.",
    )
    idempotency_key_ttl: int = Field(
        86_400,
        ge=60,
        le=30 * 86_400,
        description="Seconds an `Idempotency-Key`'s answer is replayed to retries (24 h).",
    )
    purge_after: int = Field(
        30 * 86_400,
        ge=0,
        le=3650 * 86_400,
        description="Seconds `service purge` keeps a session after it expired or was revoked "
        "(30 days), for the record of who logged in.",
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(
                "use sqlite:///path/to/file.db, postgresql://... or postgres://... "
                f"(got the scheme {scheme!r})"
            )
        return value
