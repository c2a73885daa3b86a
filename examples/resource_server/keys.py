"""The authorization server's metadata and public keys, fetched over HTTP and cached.

The key set (JWKS) is kept for its ``Cache-Control: max-age`` (else ``RS_JWKS_MAX_AGE``). A
token naming a ``kid`` the cached set lacks may be signed by a key the service has just
started using (a key rotation, docs/keys.md), so the set is fetched again, but at most once
per ``RS_JWKS_REFETCH_INTERVAL``: otherwise every forged token with a random ``kid`` would
make this server hit the authorization server, an amplifier for floods. Concurrent requests
share one fetch (a lock). A fetch that fails keeps the keys already known.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.jwk import KeySet

from examples.resource_server.config import Config

_MAX_AGE = re.compile(r"max-age=(\d+)")


class UpstreamError(Exception):
    """The authorization server could not be asked, or answered nonsense."""


class AuthorizationServer:
    """The metadata (fetched once) and the key set (cached, refetched as described above)."""

    def __init__(
        self, config: Config, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._http = http
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fresh_until = 0.0
        self._last_fetch = -float("inf")
        self._lock = asyncio.Lock()
        #: How many times the key set was fetched (for operators and tests).
        self.jwks_fetches = 0

    async def metadata(self) -> dict[str, Any]:
        """The RFC 8414 metadata; its ``issuer`` must be the configured one (section 3.3)."""
        if self._metadata is None:
            document = await self._get_json(self._config.metadata_url)
            if document.get("issuer") != self._config.issuer:
                raise UpstreamError("the metadata names another issuer than RS_ISSUER")
            if not isinstance(document.get("jwks_uri"), str):
                raise UpstreamError("the metadata has no jwks_uri")
            self._metadata = document
        return self._metadata

    async def key(self, kid: str) -> Any | None:
        """The public key named ``kid``, or None if the authorization server has no such key."""
        now = self._clock()
        async with self._lock:
            stale = self._keys is None or now >= self._fresh_until
            unknown = not stale and self._find(kid) is None
            may_refetch = now - self._last_fetch >= self._config.jwks_refetch_interval
            if stale or (unknown and may_refetch):
                await self._refresh(now)
            return self._find(kid)

    def _find(self, kid: str) -> Any | None:
        if self._keys is None:
            return None
        for key in self._keys.keys:
            if key.kid == kid and key.get("use", "sig") == "sig":
                return key
        return None

    async def _refresh(self, now: float) -> None:
        self._last_fetch = now
        uri = (await self.metadata())["jwks_uri"]
        try:
            response = await self._http.get(uri)
            response.raise_for_status()
            keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError) as error:
            if self._keys is None:
                raise UpstreamError(f"cannot fetch the key set: {error}") from error
            return  # keep serving with the keys already known
        self.jwks_fetches += 1
        self._keys = keys
        match = _MAX_AGE.search(response.headers.get("Cache-Control", ""))
        max_age = float(match.group(1)) if match else self._config.jwks_max_age
        self._fresh_until = now + max_age

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise UpstreamError(f"cannot fetch {url}: {error}") from error
        if not isinstance(document, dict):
            raise UpstreamError(f"{url} is not a JSON object")
        return document
