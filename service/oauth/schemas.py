"""Request and response models of the OAuth endpoints (RFC 8414, RFC 7009, RFC 7662) and of
the JWK Set (RFC 7517)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import SafeStr


def _absent(value: Any) -> bool:
    return value is None


def _optional(description: str) -> Any:
    """A member left out of the JSON when it has no value (never ``null``, RFC 8414 section 3.2)."""
    return Field(None, description=description, exclude_if=_absent)


class ServerMetadata(BaseModel):
    """Authorization server metadata (RFC 8414 section 2).

    Served at `/.well-known/oauth-authorization-server` and, for clients that only look there,
    at `/.well-known/openid-configuration` (the same document: the service issues no ID tokens).
    """

    issuer: str = Field(description="The `iss` of every token, exactly (`JWT_ISSUER`).")
    token_endpoint: str = Field(description="`POST /login`, absolute.")
    jwks_uri: str = Field(description="The public verification keys (JWK Set).")
    grant_types_supported: list[str] = Field(description="`password` and `refresh_token`.")
    response_types_supported: list[str] = Field(
        description="Empty: there is no authorization endpoint."
    )
    token_endpoint_auth_methods_supported: list[str] = Field(
        description="`none`: clients are public, the token endpoint needs no client secret."
    )
    revocation_endpoint: str = Field(description="`POST /revoke` (RFC 7009), absolute.")
    revocation_endpoint_auth_methods_supported: list[str] = Field(description="`none`.")
    id_token_signing_alg_values_supported: list[str] = Field(
        description="The one JWS `alg` the service's tokens are signed with (`JWT_ALGORITHM`)."
    )
    subject_types_supported: list[str] = Field(description="`public`: `sub` is the user id.")
    service_documentation: str = Field(description="The API documentation page.")
    introspection_endpoint: str | None = _optional(
        "`POST /introspect` (RFC 7662), absolute; only when `INTROSPECTION_CLIENTS` is set."
    )
    introspection_endpoint_auth_methods_supported: list[str] | None = _optional(
        "`client_secret_basic`: HTTP Basic with a client id and secret."
    )


class TokenRequest(BaseModel):
    """A token to revoke or introspect (RFC 7009 section 2.1, RFC 7662 section 2.1).

    Form fields (`application/x-www-form-urlencoded`, as the RFCs say), multipart, or JSON.
    """

    model_config = ConfigDict(extra="ignore")

    token: SafeStr = Field(min_length=1, description="An access or a refresh token.")
    token_type_hint: SafeStr | None = Field(
        None,
        max_length=64,
        description="`access_token` or `refresh_token`: which kind to look for first; "
        "another value is ignored.",
    )


class Revoked(BaseModel):
    """The token is no longer usable, or never was: the same answer either way (RFC 7009 2.2)."""

    model_config = ConfigDict(extra="forbid")


class Introspection(BaseModel):
    """What the token is (RFC 7662 section 2.2).

    `{"active": false}` alone for anything but an active access token of this service:
    revoked, expired, malformed, foreign, or a refresh token. For an active one, its claims.
    """

    active: bool = Field(description="Whether the token is an access token that works now.")
    sub: str | None = _optional("The user id.")
    username: str | None = _optional("The user's username.")
    token_type: str | None = _optional("`bearer`.")
    exp: int | None = _optional("Expiry, seconds since the epoch.")
    iat: int | None = _optional("Issued at, seconds since the epoch.")
    nbf: int | None = _optional("Not before, seconds since the epoch.")
    jti: str | None = _optional("The token's id.")
    iss: str | None = _optional("The issuer (`JWT_ISSUER`).")
    aud: str | None = _optional("The audience (`JWT_AUDIENCE`).")


class PublicJwk(BaseModel):
    """A public verification key (RFC 7517 section 4).

    Only public members: a private one (``d``, ``p``, ``q``, ``dp``, ``dq``, ``qi``, ``k``)
    fails validation instead of being published.
    """

    model_config = ConfigDict(extra="forbid")

    kty: str = Field(description="Key type (RFC 7518 section 6.1).")
    kid: str = Field(description="Key id, the RFC 7638 thumbprint; a token's `kid` names it.")
    alg: Literal["RS256", "ES256", "Ed25519"] = Field(description="The only `alg` it verifies.")
    use: Literal["sig"] = Field(description="Always `sig`: it verifies signatures.")


class RsaPublicJwk(PublicJwk):
    """An RSA public key (RFC 7518 section 6.3.1)."""

    kty: Literal["RSA"]
    n: str = Field(description="Modulus, base64url.")
    e: str = Field(description="Exponent, base64url.")


class EcPublicJwk(PublicJwk):
    """An elliptic-curve public key on P-256 (RFC 7518 section 6.2.1)."""

    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str = Field(description="x coordinate, base64url.")
    y: str = Field(description="y coordinate, base64url.")


class OkpPublicJwk(PublicJwk):
    """An Ed25519 public key (RFC 8037 section 2)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")


class JwkSet(BaseModel):
    """The public keys that verify the service's tokens: a JWK Set (RFC 7517 section 5)."""

    keys: list[Annotated[RsaPublicJwk | EcPublicJwk | OkpPublicJwk, Field(discriminator="kty")]] = (
        Field(description="The signing key first, then older or upcoming ones; empty for HS256.")
    )
