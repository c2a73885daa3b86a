"""Authorization server metadata (RFC 8414): what clients and resource servers may discover.

The document names the issuer exactly as tokens carry it in ``iss`` (RFC 8414 section 3.3:
the ``issuer`` a client discovered must be the one it later checks), and the endpoints as
absolute URLs on a configured base. The base is never taken from the request's ``Host``
header: the client chose that header, so a shared cache could hand a document pointing at
another host to everybody (the same reason ``service/errors.py`` keeps redirects relative).

Only what the service does is listed: the password and refresh-token grants at the token
endpoint, for public clients (``none``: no client authentication, RFC 7591 section 2); no
authorization endpoint, so no response type (``response_types_supported`` is required and
empty); revocation for public clients; introspection for clients with HTTP Basic
credentials, listed only when such clients are configured.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from service.security.keys import Algorithm

#: The paths of the endpoints the document names.
TOKEN_PATH = "/login"  # noqa: S105 - a path
JWKS_PATH = "/.well-known/jwks.json"
REVOCATION_PATH = "/revoke"
INTROSPECTION_PATH = "/introspect"
DOCUMENTATION_PATH = "/docs"

#: Grants of the token endpoint (RFC 6749 sections 4.3 and 6).
GRANT_TYPES = ("password", "refresh_token")


def is_absolute_base_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host and nothing after its path."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return (
        parts.scheme in {"http", "https"}
        and bool(parts.hostname)
        and not (parts.username or parts.password)
        and "?" not in value
        and "#" not in value
    )


def endpoint_base(public_base_url: str | None, issuer: str) -> str | None:
    """The absolute URL the endpoint paths go after, or None when none is configured.

    ``PUBLIC_BASE_URL`` if set; else the issuer, when it is an http(s) URL (RFC 8414 section 2
    wants the issuer to be the server's URL, so it usually is); else unknown.
    """
    if public_base_url is not None:
        return public_base_url.rstrip("/")
    if is_absolute_base_url(issuer):
        return issuer.rstrip("/")
    return None


def server_metadata(
    *, issuer: str, base: str, algorithm: Algorithm, introspection: bool
) -> dict[str, Any]:
    """The metadata document of RFC 8414 section 2 for these settings.

    ``id_token_signing_alg_values_supported`` and ``subject_types_supported`` are OpenID
    Connect Discovery's required members (RFC 8414 section 7.1.2 registers them for this
    document too). No ID token is issued: they tell a client that reads
    ``/.well-known/openid-configuration`` the one algorithm the service's JWTs are signed
    with, and that ``sub`` is the same user id for every client.
    """
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint": base + REVOCATION_PATH,
        "revocation_endpoint_auth_methods_supported": ["none"],
        "id_token_signing_alg_values_supported": [algorithm],
        "subject_types_supported": ["public"],
        "service_documentation": base + DOCUMENTATION_PATH,
    }
    if introspection:
        metadata["introspection_endpoint"] = base + INTROSPECTION_PATH
        metadata["introspection_endpoint_auth_methods_supported"] = ["client_secret_basic"]
    return metadata
