"""Brute-force protection: failed-password limits per username and per client address, and a
flood limit on the credential endpoints.

Both kinds of limit keep their counts in one store per app: in process memory by default, in
Redis when ``REDIS_URL`` is set, so that several instances count together.

- **Failure limits.** A password check runs inside ``password_attempt``, which first reserves
  one attempt on the counter of the username (in its case-folded key form) and on that of the
  client address. While a counter is full (``LOGIN_FAILURES_PER_USERNAME`` or
  ``LOGIN_FAILURES_PER_ADDRESS`` failures within ``LOGIN_FAILURE_WINDOW`` seconds of the first)
  the attempt is refused with 429 and ``Retry-After`` before any password is checked, so even
  the right password is refused. A wrong password keeps the reservation; a success gives it
  back. Reserving before checking means a burst of parallel guesses cannot slip past the count.
  A username is counted whether or not such an account exists: a 429 tells nothing about which
  usernames are real.
- **Request limits.** quart-rate-limiter's limiter (GCRA) lets one client address send bursts
  of ``AUTH_REQUESTS_PER_MINUTE`` requests to each of ``/signup``, ``/login`` and ``/refresh``,
  then that many a minute. It runs for the auth blueprint only: the items routes never touch
  the store.

When ``REDIS_URL`` is set but Redis does not answer, these endpoints answer 503 with
``Retry-After`` (fail closed): whoever can make Redis unreachable must not gain unlimited
password guesses. Requests that check no password and are not flood-limited never use Redis.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from quart import Quart, current_app, request
from quart_rate_limiter import RateLimit, RateLimiter, RateLimitExceeded
from quart_rate_limiter.store import RateLimiterStoreABC
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from service.errors import InvalidGrant, ServiceUnavailable, TooManyRequests
from service.http import client_address
from service.security.events import security_event
from service.settings import Settings

#: The auth blueprint, whose requests pass through the request limiter.
AUTH_BLUEPRINT = "auth"
#: Endpoints of the auth blueprint that get the per-address request limit.
CREDENTIAL_ENDPOINTS = frozenset({"auth.signup", "auth.login", "auth.refresh"})
#: Seconds to wait for Redis before a credential request answers 503.
REDIS_TIMEOUT = 1.0
#: Seconds between sweeps of expired entries of the memory store.
SWEEP_INTERVAL = 60.0
#: IPv6 clients are counted by network: one host usually holds a whole /64.
IPV6_PREFIX = 64

FAILED_PASSWORDS = "Too many failed password attempts; try again after the Retry-After delay."

_EXTENSION_KEY = "ratelimit"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` failures counted under ``key`` within ``window`` seconds of the first."""

    name: str
    key: str
    limit: int
    window: int


class LimitStore(RateLimiterStoreABC):
    """quart-rate-limiter's store of arrival times, plus counters of failed attempts."""

    @abstractmethod
    async def reserve(self, quotas: Sequence[Quota]) -> tuple[Quota, int] | None:
        """Count one attempt against every quota, atomically, unless one of them is full.

        Returns None when counted; otherwise the full quota and the seconds until its window
        ends, counting nothing.
        """

    @abstractmethod
    async def release(self, quotas: Sequence[Quota]) -> None:
        """Take back an attempt that ``reserve`` counted and that turned out not to fail."""


@dataclass
class _Counter:
    count: int
    expires: float


class MemoryLimitStore(LimitStore):
    """Counts in this process: the default, right for one instance.

    Unlike the library's ``MemoryStore`` it forgets expired entries, so memory follows the
    recent traffic instead of every address ever seen.
    """

    def __init__(self) -> None:
        self._arrivals: dict[str, float] = {}
        self._counters: dict[str, _Counter] = {}
        self._next_sweep = 0.0

    async def before_serving(self) -> None:
        pass

    async def after_serving(self) -> None:
        pass

    async def get(self, key: str, default: datetime) -> datetime:
        arrival = self._arrivals.get(key)
        return default if arrival is None else datetime.fromtimestamp(arrival, UTC)

    async def set(self, key: str, tat: datetime) -> None:
        self._arrivals[key] = tat.timestamp()
        self._sweep(time.time())

    async def reserve(self, quotas: Sequence[Quota]) -> tuple[Quota, int] | None:
        now = time.time()
        for quota in quotas:
            counter = self._live(quota.key, now)
            if counter is not None and counter.count >= quota.limit:
                return quota, _whole_seconds(counter.expires - now)
        for quota in quotas:
            counter = self._live(quota.key, now)
            if counter is None:
                self._counters[quota.key] = _Counter(1, now + quota.window)
            else:
                counter.count += 1
        self._sweep(now)
        return None

    async def release(self, quotas: Sequence[Quota]) -> None:
        now = time.time()
        for quota in quotas:
            counter = self._live(quota.key, now)
            if counter is not None:
                counter.count -= 1
                if counter.count <= 0:
                    del self._counters[quota.key]

    def _live(self, key: str, now: float) -> _Counter | None:
        counter = self._counters.get(key)
        return counter if counter is not None and counter.expires > now else None

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        self._arrivals = {key: at for key, at in self._arrivals.items() if at > now}
        self._counters = {key: c for key, c in self._counters.items() if c.expires > now}


# Lua runs atomically in Redis: checking and counting several keys is one step for every
# instance. KEYS are the counters; ARGV holds the limit and the window (ms) of each in turn.
_RESERVE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then  -- never left without an expiry: that would block for good
      ttl = tonumber(ARGV[2 * i])
      redis.call('PEXPIRE', key, ttl)
    end
    return {i, ttl}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
  end
end
return {0, 0}
"""
# DECR on a key that has expired would create it again without an expiry: check first.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and redis.call('DECR', key) <= 0 then
    redis.call('DEL', key)
  end
end
return 0
"""


class RedisLimitStore(LimitStore):
    """Counts in Redis, shared by every instance with the same ``REDIS_URL`` and key prefix.

    Unlike the library's ``RedisStore`` every key expires once it no longer matters, a Redis
    that does not answer is a 503 within about a second instead of a hung request, and the
    failure counters are checked and counted atomically.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self._prefix = prefix
        # Options in the URL (``?socket_timeout=...``, ``?ssl_cert_reqs=none``) win.
        self._redis = Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), retries=1),
        )
        self._reserve = self._redis.register_script(_RESERVE)
        self._release = self._redis.register_script(_RELEASE)

    async def before_serving(self) -> None:
        pass

    async def after_serving(self) -> None:
        await self._redis.aclose()

    async def get(self, key: str, default: datetime) -> datetime:
        value: bytes | None = await self._answer(self._redis.get(self._prefix + key))
        return default if value is None else datetime.fromtimestamp(float(value), UTC)

    async def set(self, key: str, tat: datetime) -> None:
        # Once the arrival time has passed the key means "no recent requests": let it expire.
        expires_in_ms = max(1, math.ceil((tat.timestamp() - time.time()) * 1000))
        await self._answer(
            self._redis.set(self._prefix + key, repr(tat.timestamp()), px=expires_in_ms)
        )

    async def reserve(self, quotas: Sequence[Quota]) -> tuple[Quota, int] | None:
        args: list[int] = []
        for quota in quotas:
            args += [quota.limit, quota.window * 1000]
        full: int
        ttl_ms: int
        full, ttl_ms = await self._answer(
            self._reserve(keys=[self._prefix + quota.key for quota in quotas], args=args)
        )
        if not full:
            return None
        return quotas[int(full) - 1], _whole_seconds(int(ttl_ms) / 1000)

    async def release(self, quotas: Sequence[Quota]) -> None:
        # Best effort: the password check has succeeded, and a login must not fail because
        # an attempt could not be given back.
        try:
            await self._release(keys=[self._prefix + quota.key for quota in quotas])
        except RedisError as error:
            logger.warning("rate-limit store unavailable: %s", type(error).__name__)

    async def _answer(self, command: Awaitable[Any]) -> Any:
        try:
            return await command
        except RedisError as error:
            logger.warning("rate-limit store unavailable: %s", type(error).__name__)
            raise ServiceUnavailable(
                "The rate-limit store is unavailable; retry shortly."
            ) from None


class CredentialRequestLimiter(RateLimiter):
    """quart-rate-limiter's limiter, hooked to the auth blueprint's requests only.

    The library hooks every request of the app; the items routes (thousands of requests a
    second) would pay for a lookup that never limits them. Limited requests are logged.
    """

    def init_app(self, app: Quart, enabled: bool = True) -> None:
        app.before_request_funcs.setdefault(AUTH_BLUEPRINT, []).append(self._limit_request)
        app.before_serving(self._before_serving)
        app.after_serving(self._after_serving)
        app.config.setdefault("QUART_RATE_LIMITER_ENABLED", enabled)

    async def _limit_request(self) -> None:
        try:
            await self._before_request()
        except RateLimitExceeded as exceeded:
            _report("requests", exceeded.retry_after)
            raise


@dataclass(frozen=True)
class Limits:
    """The brute-force limits of one app: its settings and its store."""

    settings: Settings
    store: LimitStore

    def quotas(self, account: str, *, per_address: bool) -> list[Quota]:
        """The counters a password check of ``account`` from this request is counted on."""
        settings = self.settings
        window = settings.login_failure_window
        quotas = [
            Quota(
                "username",
                f"fail:user:{account_digest(account)}",
                settings.login_failures_per_username,
                window,
            )
        ]
        if per_address:
            quotas.append(
                Quota(
                    "address",
                    f"fail:addr:{address_key(client_address())}",
                    settings.login_failures_per_address,
                    window,
                )
            )
        return quotas


def init_app(app: Quart, settings: Settings) -> None:
    """Give ``app`` its limit store and the request limit of the credential endpoints."""
    store: LimitStore = (
        RedisLimitStore(settings.redis_url, settings.rate_limit_key_prefix)
        if settings.redis_url
        else MemoryLimitStore()
    )
    request_limits = []
    if settings.auth_requests_per_minute:
        request_limits.append(
            RateLimit(
                settings.auth_requests_per_minute,
                timedelta(minutes=1),
                skip_function=_not_a_credential_endpoint,
            )
        )
    CredentialRequestLimiter(app, key_function=_address, store=store, default_limits=request_limits)
    app.extensions[_EXTENSION_KEY] = Limits(settings, store)


@asynccontextmanager
async def password_attempt(
    account: str, *, per_address: bool = True, failure: type[Exception] = InvalidGrant
) -> AsyncIterator[None]:
    """Run a password check under the failure limits.

    ``account`` is the username in its key form (``users.username_key``), whether or not
    such an account exists. Raises ``TooManyRequests`` before the check while a limit holds.
    ``failure`` raised inside means a wrong password, which stays counted; success or any
    other error gives the attempt back. ``per_address=False`` counts against the username
    only (a password check by a caller who is already authenticated).
    """
    limits: Limits = current_app.extensions[_EXTENSION_KEY]
    quotas = limits.quotas(account, per_address=per_address)
    blocked = await limits.store.reserve(quotas)
    if blocked is not None:
        quota, retry_after = blocked
        _report(quota.name, retry_after, account=account_digest(account))
        raise TooManyRequests(FAILED_PASSWORDS, retry_after=retry_after)
    try:
        yield
    except failure:
        raise
    except Exception:
        await limits.store.release(quotas)
        raise
    await limits.store.release(quotas)


def address_key(address: str | None) -> str:
    """The client address as counted: IPv4 as is, IPv6 by its /64 network."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def account_digest(account: str) -> str:
    """A short digest of a username key: keeps usernames out of Redis and the logs."""
    return hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _whole_seconds(seconds: float) -> int:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return max(1, math.ceil(seconds))


async def _address() -> str:
    return address_key(client_address())


async def _not_a_credential_endpoint() -> bool:
    # A CORS preflight (OPTIONS) carries no credentials and must not spend a browser's budget.
    return request.method == "OPTIONS" or request.endpoint not in CREDENTIAL_ENDPOINTS


def _report(limit: str, retry_after: object, *, account: str | None = None) -> None:
    security_event(
        "rate_limited",
        level=logging.WARNING,
        limit=limit,
        retry_after=retry_after,
        account=account,
        endpoint=request.endpoint,
    )
