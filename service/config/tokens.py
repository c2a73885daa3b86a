"""Token settings: the algorithm and its keys, the claims, the lifetimes, and the resource
servers that may introspect tokens.

Whether a key parses and fits the algorithm is checked when it is loaded
(``service.config.keyring``); this group checks that the settings fit together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from service.config.environment import EnvironmentSettings
from service.config.rules import MIN_SECRET_LENGTH, refuse_weak_secret
from service.security import keys

JwtAlgorithm = keys.Algorithm

#: A client id of INTROSPECTION_CLIENTS (it travels form-encoded in HTTP Basic, RFC 6749 2.3.1).
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class TokenSettings(EnvironmentSettings):
    """``SECRET_KEY*``, ``JWT_*``, the token lifetimes and ``INTROSPECTION_CLIENTS``."""

    secret_key: SecretStr | None = Field(
        None, description="HS256: the HMAC secret that signs tokens."
    )
    jwt_algorithm: JwtAlgorithm = Field(
        "HS256",
        description=(
            "JWS `alg` of issued tokens, the only one accepted: HS256 (signed with SECRET_KEY), "
            "RS256, ES256 or Ed25519 (signed with JWT_PRIVATE_KEY). `EdDSA` is read as Ed25519 "
            "(RFC 9864); tokens then carry `alg: Ed25519`."
        ),
    )
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "HS256 rotation: comma-separated secrets that still verify tokens but never sign "
            "(the previous SECRET_KEY, or the next one before it signs)."
        ),
    )
    jwt_private_key: SecretStr | None = Field(
        None,
        description=(
            "RS256/ES256/Ed25519: the PEM private key (unencrypted) that signs tokens; "
            "`service keygen` makes one. Its `kid` is its RFC 7638 thumbprint."
        ),
    )
    jwt_private_key_file: Path | None = Field(
        None, description="A file holding the JWT_PRIVATE_KEY PEM instead (set one of the two)."
    )
    jwt_verify_keys: SecretStr | None = Field(
        None,
        description=(
            "RS256/ES256/Ed25519 rotation: PEM keys, one block after another, that still verify "
            "tokens but never sign (the previous key, or the next one before it signs). Public "
            "keys, or private ones of which only the public half is kept."
        ),
    )
    jwt_verify_keys_file: Path | None = Field(
        None, description="A file holding the JWT_VERIFY_KEYS PEM blocks instead."
    )
    jwt_issuer: str = Field("service", min_length=1, description="`iss` claim set and required.")
    jwt_audience: str = Field(
        "service-api",
        min_length=1,
        description="`aud` of access tokens, set and required (refresh tokens, device "
        "credentials and `mfa_token`s carry the token endpoint's URL instead).",
    )
    access_token_ttl: int = Field(
        900, ge=30, le=86_400, description="Access token lifetime, seconds."
    )
    refresh_token_ttl: int = Field(
        604_800, ge=300, le=31_536_000, description="Absolute session lifetime, seconds."
    )
    refresh_reuse_interval: int = Field(
        10,
        ge=0,
        le=60,
        description="Seconds after a rotation in which the refresh token just spent gets the "
        "same successor again instead of ending the session (concurrent refreshes of one "
        "client); 0: any reuse ends the session.",
    )
    device_token_ttl: int = Field(
        2_592_000,
        ge=3_600,
        le=31_536_000,
        description="Lifetime of the device credential that /login issues (cookie and "
        "`device_token`), seconds.",
    )
    introspection_clients: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="Resource servers allowed to call /introspect (RFC 7662), comma-separated "
        "`client_id:secret` pairs; they authenticate with HTTP Basic. Secrets: at least "
        f"{MIN_SECRET_LENGTH} random characters, no commas. None by default: /introspect "
        "refuses every caller with 401.",
    )

    @field_validator("jwt_algorithm", mode="before")
    @classmethod
    def _current_algorithm_name(cls, value: object) -> object:
        return keys.ALGORITHM_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator(
        "jwt_private_key",
        "jwt_private_key_file",
        "jwt_verify_keys",
        "jwt_verify_keys_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key_fallbacks", mode="before")
    @classmethod
    def _split_fallbacks(cls, value: object) -> object:
        if isinstance(value, str):
            return [secret.strip() for secret in value.split(",") if secret.strip()]
        return value

    @field_validator("introspection_clients", mode="before")
    @classmethod
    def _split_clients(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        clients: dict[str, str] = {}
        for pair in (part.strip() for part in value.split(",")):
            if not pair:
                continue
            client_id, separator, secret = pair.partition(":")
            if not separator or not client_id.strip() or not secret:
                raise ValueError("write comma-separated client_id:secret pairs")
            if client_id.strip() in clients:
                raise ValueError(f"client id {client_id.strip()!r} is listed twice")
            clients[client_id.strip()] = secret
        return clients

    @field_validator("introspection_clients")
    @classmethod
    def _strong_client_secrets(cls, clients: dict[str, SecretStr]) -> dict[str, SecretStr]:
        """Client secrets guard every session's state; they are machine secrets, never typed,
        so they are held to the production rule of SECRET_KEY in every environment."""
        for client_id, secret in clients.items():
            if not _CLIENT_ID.fullmatch(client_id):
                raise ValueError(
                    f"client id {client_id!r}: use ASCII letters, digits and . _ - only"
                )
            refuse_weak_secret(f"the secret of {client_id!r}", secret.get_secret_value())
        return clients

    def check_fitting_key_settings(self) -> Self:
        """Key settings that fit the algorithm; whether the keys themselves parse and fit is
        checked when they are loaded (``service.config.keyring``), still before anything serves."""
        if self.jwt_algorithm == "HS256":
            for name in ("jwt_private_key", "jwt_private_key_file", "jwt_verify_keys_file"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name.upper()} is set but JWT_ALGORITHM is HS256: set JWT_ALGORITHM "
                        "to the algorithm of the key (RS256, ES256 or Ed25519)"
                    )
            if self.jwt_verify_keys is not None:
                raise ValueError("JWT_VERIFY_KEYS is set but JWT_ALGORITHM is HS256")
            return self
        if self.secret_key_fallbacks:
            raise ValueError(
                f"SECRET_KEY_FALLBACKS only applies to HS256, not {self.jwt_algorithm}; "
                "older keys go in JWT_VERIFY_KEYS"
            )
        for name in ("JWT_PRIVATE_KEY", "JWT_VERIFY_KEYS"):
            if (
                getattr(self, name.lower()) is not None
                and getattr(self, f"{name.lower()}_file") is not None
            ):
                raise ValueError(f"set {name} or {name}_FILE, not both")
        if self.jwt_private_key is None and self.jwt_private_key_file is None:
            algorithm = self.jwt_algorithm
            raise ValueError(
                f"JWT_ALGORITHM={algorithm} needs a private key: set JWT_PRIVATE_KEY to a PEM "
                "private key or JWT_PRIVATE_KEY_FILE to the path of one "
                f"(`service keygen --algorithm {algorithm}` makes one)"
            )
        return self
