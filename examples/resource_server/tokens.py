"""Access-token checks, the same ones the service makes on its own routes.

A token is accepted only if it is a compact JWS (three parts, at most 4096 characters) whose
header holds exactly ``alg`` (the configured one: no ``none``, no HMAC with a public key,
RFC 8725 section 3.1), ``kid`` (a key of the published set; never ``jku``, ``x5u``, ``jwk`` or
``x5c``, which would let the sender pick the key, section 3.10) and ``typ: at+jwt`` (an
access token, not a refresh token, RFC 9068 section 4, RFC 8725 section 3.11); whose signature
verifies; and whose ``iss`` and ``aud`` are the configured ones and ``exp``, ``nbf``, ``iat``
current (5 seconds of clock skew). With introspection on, the authorization server must also
say ``active: true`` for it (RFC 7662), so a revoked token is refused at once instead of at
its ``exp``.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from examples.resource_server.config import Config
from examples.resource_server.keys import AuthorizationServer, UpstreamError

ACCESS_TYP = "at+jwt"
ALLOWED_HEADER = frozenset({"alg", "kid", "typ"})
MAX_TOKEN_LENGTH = 4096
LEEWAY_SECONDS = 5


class Refused(Exception):
    """The token is not accepted; the message says why (for logs, not for clients)."""


class Verifier:
    """Checks bearer tokens against the authorization server's keys (and, if on, its word)."""

    def __init__(
        self, config: Config, server: AuthorizationServer, http: httpx.AsyncClient
    ) -> None:
        self._config = config
        self._server = server
        self._http = http
        self._claims = JWTClaimsRegistry(
            now=lambda: int(time.time()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": config.issuer},
            aud={"essential": True, "value": config.audience},
            sub={"essential": True},
            exp={"essential": True},
            nbf={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of an acceptable access token; ``Refused`` otherwise."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise Refused("not a compact JWS of sane size")
        try:
            header = jws.extract_compact(token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError) as error:
            raise Refused(f"unreadable header: {error}") from None
        if set(header) - ALLOWED_HEADER:
            raise Refused("header parameters not allowed")
        if header.get("alg") != self._config.algorithm:
            raise Refused("algorithm not allowed")
        if header.get("typ") != ACCESS_TYP:
            raise Refused("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("no key id")
        key = await self._server.key(kid)
        if key is None:
            raise Refused("unknown key id")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[self._config.algorithm]
            ).claims
            self._claims.validate(claims)
        except (JoseError, ValueError) as error:
            raise Refused(f"rejected: {error}") from None
        if self._config.introspect and not await self._active(token, claims):
            raise Refused("the authorization server says the token is not active")
        return claims

    async def _active(self, token: str, claims: dict[str, Any]) -> bool:
        """RFC 7662: ``active`` for this very token (same ``sub``), asked every time."""
        endpoint = (await self._server.metadata()).get("introspection_endpoint")
        if not isinstance(endpoint, str):
            raise UpstreamError("the metadata has no introspection_endpoint")
        assert self._config.client_id is not None
        assert self._config.client_secret is not None
        try:
            response = await self._http.post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=httpx.BasicAuth(self._config.client_id, self._config.client_secret),
            )
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise UpstreamError(f"introspection failed: {error}") from error
        return (
            isinstance(answer, dict)
            and answer.get("active") is True
            and answer.get("sub") == claims.get("sub")
        )
