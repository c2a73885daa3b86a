"""Login settings: how passwords are hashed, and the limits on failed logins and on requests
to the authentication endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.config.environment import EnvironmentSettings


class LoginSettings(EnvironmentSettings):
    """``BCRYPT_ROUNDS``, ``PASSWORD_*``, ``REDIS_URL``, ``RATE_LIMIT_KEY_PREFIX``, ``LOGIN_*``,
    ``AUTH_REQUESTS_PER_MINUTE``."""

    bcrypt_rounds: int = Field(12, ge=4, le=20, description="bcrypt cost factor (log2 rounds).")
    password_hash_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="Threads per worker process that hash and verify passwords; 0: one per CPU "
        "the process may use.",
    )
    password_hash_priority: Literal["idle", "low", "normal"] = Field(
        "idle",
        description="CPU priority of those threads: `idle` (Linux SCHED_IDLE: hashing only "
        "gets CPU no request is waiting for), `low` (nice 19) or `normal`.",
    )
    password_queue_wait: float = Field(
        2.0,
        ge=0,
        le=60,
        description="Longest a password check may wait for a hashing thread, seconds; when the "
        "queue is longer, /login, /signup and /me/password answer 503 with Retry-After at once.",
    )
    redis_url: str | None = Field(
        None,
        description="redis://... or rediss://...: rate-limit counters shared by every instance "
        "(optional; without it each process counts in its own memory).",
    )
    rate_limit_key_prefix: str = Field(
        "service:ratelimit:",
        min_length=1,
        description="Prefix of the rate-limit keys in Redis, so deployments can share one Redis.",
    )
    login_failures_per_username: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Failed password checks allowed per username (any letter case) per window; "
        "then 429 for that username, even with the right password, until the window ends.",
    )
    login_failures_per_address: int = Field(
        30,
        ge=1,
        le=100_000,
        description="Failed logins allowed per client address per window, all usernames "
        "together; then 429 for that address until the window ends.",
    )
    login_failure_window: int = Field(
        900,
        ge=1,
        le=86_400,
        description="Seconds a run of failed logins is counted, from its first failure.",
    )
    login_failures_per_device: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Failed password checks allowed per window from one device credential (a "
        "client that logged in to the account before) or one session at /me/password; such "
        "attempts count here instead of on the per-username limit.",
    )
    auth_requests_per_minute: int = Field(
        60,
        ge=0,
        le=1_000_000,
        description="Requests per client address per minute to each of /signup, /login, "
        "/login/mfa, /refresh, /logout and /revoke (bursts of this many allowed); then 429. 0 "
        "turns this limit off.",
    )
