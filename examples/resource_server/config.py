"""The resource server's settings, from ``RS_*`` environment variables.

The issuer, audience and algorithm are configured, never taken from a token or learned from
the metadata alone: a verifier that trusts what it is shown trusts an attacker (OWASP JWT
cheat sheet, RFC 8725 section 3.1). The metadata only supplies the endpoint URLs, and its
``issuer`` must equal ``RS_ISSUER`` (RFC 8414 section 3.3).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

#: The JWS algorithms the service signs with; HS256 keys are secrets, never published.
ASYMMETRIC = frozenset({"RS256", "ES256", "Ed25519"})


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it."""


@dataclass(frozen=True)
class Config:
    """What the resource server needs to know about the authorization server."""

    metadata_url: str
    issuer: str
    audience: str
    algorithm: str
    #: Fewest seconds between two key set fetches caused by an unknown ``kid``.
    jwks_refetch_interval: float = 60.0
    #: Seconds the key set is kept when its response says no ``max-age``.
    jwks_max_age: float = 300.0
    #: Ask ``/introspect`` about every token too, so revocation takes effect at once.
    introspect: bool = False
    client_id: str | None = None
    client_secret: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ASYMMETRIC:
            raise ConfigError(f"RS_ALGORITHM must be one of {sorted(ASYMMETRIC)}")
        if self.introspect and not (self.client_id and self.client_secret):
            raise ConfigError("RS_INTROSPECT needs RS_CLIENT_ID and RS_CLIENT_SECRET")
        if self.jwks_refetch_interval < 0 or self.jwks_max_age <= 0:
            raise ConfigError("RS_JWKS_REFETCH_INTERVAL >= 0 and RS_JWKS_MAX_AGE > 0, seconds")

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Config:
        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(f"set {name}")
            return value

        try:
            return cls(
                metadata_url=required("RS_METADATA_URL"),
                issuer=required("RS_ISSUER"),
                audience=required("RS_AUDIENCE"),
                algorithm=required("RS_ALGORITHM"),
                jwks_refetch_interval=float(env.get("RS_JWKS_REFETCH_INTERVAL", "60")),
                jwks_max_age=float(env.get("RS_JWKS_MAX_AGE", "300")),
                introspect=env.get("RS_INTROSPECT", "").lower() in {"1", "true", "yes"},
                client_id=env.get("RS_CLIENT_ID") or None,
                client_secret=env.get("RS_CLIENT_SECRET") or None,
            )
        except ValueError as error:
            raise ConfigError(f"a number setting is not a number: {error}") from None
