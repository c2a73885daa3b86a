"""The oauth blueprint: server metadata (RFC 8414), the JWK Set of the token keys (RFC 7517),
revocation (RFC 7009), introspection (RFC 7662).

``/.well-known/jwks.json`` is on the sessions' blueprint ("auth"), where it was before it moved
here: its endpoint name and OpenAPI tag stay as they were.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from pydantic import ValidationError
from quart import Blueprint, request
from quart_schema import (
    DataSource,
    document_request,
    security_scheme,
    tag_blueprint,
    validate_response,
)
from werkzeug.datastructures import Headers

from service.errors import InvalidClient, InvalidRequest, NotFound, validation_errors
from service.oauth import introspection, revocation
from service.oauth.schemas import Introspection, JwkSet, Revoked, ServerMetadata, TokenRequest
from service.security import discovery
from service.security.clients import basic_credentials
from service.security.events import security_event
from service.services import services
from service.sessions.routes import bp as auth_bp
from service.web.openapi import problems, response_headers
from service.web.request_limit import request_limited
from service.web.requests import read_form_or_json
from service.web.responses import NO_STORE, headers

bp = Blueprint("oauth", __name__)
tag_blueprint(bp, ["oauth"])

#: How long clients and caches may keep the metadata; it changes only with a deploy.
METADATA_MAX_AGE = 3600
_METADATA_CACHING = headers(Cache_Control=f"public, max-age={METADATA_MAX_AGE}")


@bp.get("/.well-known/oauth-authorization-server")
@validate_response(ServerMetadata)
@problems(404)
async def authorization_server_metadata() -> tuple[ServerMetadata, int, Headers]:
    """The authorization server metadata (RFC 8414): issuer, endpoints, grants, algorithms.

    Endpoint URLs are absolute, on `PUBLIC_BASE_URL` (or `JWT_ISSUER` when that is a URL),
    never on the request's `Host` header. Without either the service does not know its own
    URL, and the answer is `404`. Cacheable for an hour.
    """
    return _metadata(), 200, _METADATA_CACHING


@bp.get("/.well-known/openid-configuration")
@validate_response(ServerMetadata)
@problems(404)
async def openid_configuration() -> tuple[ServerMetadata, int, Headers]:
    """The same metadata, where OpenID Connect clients look for it (RFC 8414 section 5).

    The service issues no ID tokens; the document is the one of
    `/.well-known/oauth-authorization-server`, for libraries that read only this address.
    """
    return _metadata(), 200, _METADATA_CACHING


def _metadata() -> ServerMetadata:
    settings = services().settings
    base = discovery.endpoint_base(settings.public_base_url, settings.jwt_issuer)
    if base is None:
        raise NotFound(
            "The service does not know its public URL: set PUBLIC_BASE_URL (or JWT_ISSUER "
            "to the service's URL) to publish its metadata."
        )
    document = discovery.server_metadata(
        issuer=settings.jwt_issuer,
        base=base,
        algorithm=settings.jwt_algorithm,
        introspection=bool(services().introspection_clients),
    )
    return ServerMetadata.model_validate(document)


@bp.post("/revoke")
@request_limited
@document_request(TokenRequest, source=DataSource.FORM)
@validate_response(Revoked)
@response_headers(200, "Cache-Control")
@problems(400, 429)
async def revoke() -> tuple[Revoked, int, Headers]:
    """Revoke a refresh or an access token (RFC 7009): its whole session ends.

    For public clients: no client authentication, as at `/logout`; holding the token is the
    proof. `200` with `{}` whether or not the token was live: an unknown, malformed, expired
    or already revoked token gets the same answer (RFC 7009 section 2.2). A body without
    `token` is `400` with `error: invalid_request`. Too many requests from one address: `429`
    with `Retry-After` (seconds), as at `/logout`.
    """
    body = _token_request(await read_form_or_json())
    await revocation.revoke(services(), body.token, body.token_type_hint)
    return Revoked(), 200, NO_STORE


@bp.post("/introspect")
@security_scheme([{"introspectionClient": []}])
@document_request(TokenRequest, source=DataSource.FORM)
@validate_response(Introspection)
@response_headers(200, "Cache-Control")
@problems(400, 401)
async def introspect() -> tuple[Introspection, int, Headers]:
    """Whether an access token is active now, and its claims (RFC 7662), for resource servers.

    Callers authenticate with HTTP Basic as a client of `INTROSPECTION_CLIENTS` (RFC 6749
    section 2.3.1); otherwise `401` with `error: invalid_client` and a `Basic` challenge.
    `{"active": false}` for anything but an access token whose session is live: revoked,
    expired, malformed, foreign tokens and refresh tokens alike. The session is checked on
    every call, so a revoked token is inactive at once; the answer is never cacheable.
    """
    _authenticate_client()
    body = _token_request(await read_form_or_json())
    active = await introspection.introspect(services(), body.token)
    if active is None:
        return Introspection(active=False), 200, NO_STORE
    return Introspection(active=True, **asdict(active)), 200, NO_STORE


def _authenticate_client() -> str:
    """The id of the introspection client of the request; ``InvalidClient`` if there is none."""
    credentials = basic_credentials(request.headers.get("Authorization"))
    client_id = services().introspection_clients.authenticate(credentials)
    if client_id is None:
        security_event(
            "introspection_client_refused",
            level=logging.WARNING,
            reason="no Basic credentials" if credentials is None else "unknown client or secret",
        )
        raise InvalidClient("Authenticate with the client id and secret, as HTTP Basic.")
    return client_id


def _token_request(data: object) -> TokenRequest:
    """A malformed body is ``invalid_request`` (RFC 7009 section 2.2.1, RFC 7662 section 2.3)."""
    try:
        return TokenRequest.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(
            "The request needs a `token` field.", errors=validation_errors(error)
        ) from None


#: How long verifiers may cache the key set; a new key is published at least this long before
#: it signs (docs/keys.md).
JWKS_MAX_AGE = 300


_JWKS_CACHING = headers(Cache_Control=f"public, max-age={JWKS_MAX_AGE}")


@auth_bp.get("/.well-known/jwks.json")
@validate_response(JwkSet)
async def jwks() -> tuple[JwkSet, int, Headers]:
    """The public keys that verify the service's tokens, as a JWK Set (RFC 7517 section 5).

    Each key has its `kid` (a token's header names its key with it), `alg` and `use: sig`.
    Only public members are published. With HS256 the signing key is a secret, so `keys` is
    empty. Cacheable for five minutes.
    """
    key_set = JwkSet.model_validate(services().tokens.keys.public_jwks())
    return key_set, 200, _JWKS_CACHING
