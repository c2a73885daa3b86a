"""Where the brute-force limits keep their counts: process memory, or Redis for several instances.

A store does two kinds of counting, each atomic for every instance that shares the store:

- ``reserve``/``release``: failed-attempt counters, one per ``Quota`` (at most ``limit``
  failures within ``window`` seconds of the first).
- ``admit``: a request rate by GCRA, the generic cell rate algorithm (``count`` requests per
  ``period`` as a steady rate, with bursts of up to ``count``), kept as one theoretical
  arrival time per key, which expires once it has passed.

``RedisLimitStore`` runs each step as one Lua script, which Redis executes atomically, and
answers ``ServiceUnavailable`` within about a second when Redis does not (fail closed).
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.errors import ServiceUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Seconds to wait for Redis before a credential request answers 503.
REDIS_TIMEOUT = 1.0
#: Seconds between sweeps of expired entries of the memory store.
SWEEP_INTERVAL = 60.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` failures counted under ``key`` within ``window`` seconds of the first."""

    name: str
    key: str
    limit: int
    window: int


class LimitStore(ABC):
    """Counters of failed attempts and arrival times of requests."""

    @abstractmethod
    async def admit(self, key: str, count: int, period: float) -> int | None:
        """Count one request under ``key`` unless it exceeds ``count`` per ``period`` seconds.

        Returns None when counted; otherwise the whole seconds until one more would be.
        """

    @abstractmethod
    async def reserve(self, quotas: Sequence[Quota]) -> tuple[Quota, int] | None:
        """Count one attempt against every quota, atomically, unless one of them is full.

        Returns None when counted; otherwise the full quota and the seconds until its window
        ends, counting nothing.
        """

    @abstractmethod
    async def release(self, quotas: Sequence[Quota]) -> None:
        """Take back an attempt that ``reserve`` counted and that turned out not to fail."""

    async def close(self) -> None:  # noqa: B027 (a store without connections has nothing to do)
        """Let go of connections: the app stops serving."""


@dataclass
class _Counter:
    count: int
    expires: float


class MemoryLimitStore(LimitStore):
    """Counts in this process: the default, right for one instance.

    Expired entries are swept out, so memory follows the recent traffic instead of every
    address ever seen.
    """

    def __init__(self) -> None:
        self._arrivals: dict[str, float] = {}
        self._counters: dict[str, _Counter] = {}
        self._next_sweep = 0.0

    async def admit(self, key: str, count: int, period: float) -> int | None:
        now = time.time()
        interval = period / count
        arrival = max(self._arrivals.get(key, now), now)
        waited = arrival - now - (period - interval)
        if waited > 0:
            return whole_seconds(waited)
        self._arrivals[key] = arrival + interval
        self._sweep(now)
        return None

    async def reserve(self, quotas: Sequence[Quota]) -> tuple[Quota, int] | None:
        now = time.time()
        for quota in quotas:
            counter = self._live(quota.key, now)
            if counter is not None and counter.count >= quota.limit:
                return quota, whole_seconds(counter.expires - now)
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


# GCRA. KEYS[1] holds the theoretical arrival time in ms of Redis's own clock, so instances
# with skewed clocks still agree. ARGV: the emission interval (period / count) and the burst
# tolerance (period - interval), in ms. Returns 0 when counted, else the ms to wait.
_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = tonumber(ARGV[1])
local arrival = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local waited = arrival - now - tonumber(ARGV[2])
if waited > 0 then
  return math.ceil(waited)
end
local next_arrival = arrival + interval
redis.call('SET', KEYS[1], next_arrival, 'PX', math.max(1, math.ceil(next_arrival - now)))
return 0
"""
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

    Every key expires once it no longer matters, and a Redis that does not answer is a 503
    within about a second instead of a hung request.

    The ``redis`` package is imported here, not at the top: it is a large import (every client
    kind) that a worker without ``REDIS_URL`` would pay at each start for nothing.
    """

    def __init__(self, url: str, prefix: str) -> None:
        from redis.asyncio import Redis  # noqa: PLC0415 (see the class doc)
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.exceptions import RedisError  # noqa: PLC0415

        self._errors = RedisError
        self._prefix = prefix
        # Options in the URL (``?socket_timeout=...``, ``?ssl_cert_reqs=none``) win.
        self._redis: Redis = Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), retries=1),
        )
        self._admit = self._redis.register_script(_ADMIT)
        self._reserve = self._redis.register_script(_RESERVE)
        self._release = self._redis.register_script(_RELEASE)

    async def close(self) -> None:
        await self._redis.aclose()

    async def admit(self, key: str, count: int, period: float) -> int | None:
        interval_ms = period * 1000 / count
        waited_ms = int(
            await self._answer(
                self._admit(
                    keys=[self._prefix + key], args=[interval_ms, period * 1000 - interval_ms]
                )
            )
        )
        return whole_seconds(waited_ms / 1000) if waited_ms > 0 else None

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
        return quotas[int(full) - 1], whole_seconds(int(ttl_ms) / 1000)

    async def release(self, quotas: Sequence[Quota]) -> None:
        # Best effort: the password check has succeeded, and a login must not fail because
        # an attempt could not be given back.
        try:
            await self._release(keys=[self._prefix + quota.key for quota in quotas])
        except self._errors as error:
            logger.warning("rate-limit store unavailable: %s", type(error).__name__)

    async def _answer(self, command: Awaitable[Any]) -> Any:
        try:
            return await command
        except self._errors as error:
            logger.warning("rate-limit store unavailable: %s", type(error).__name__)
            raise ServiceUnavailable(
                "The rate-limit store is unavailable; retry shortly."
            ) from None


def whole_seconds(seconds: float) -> int:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return max(1, math.ceil(seconds))
