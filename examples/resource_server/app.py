"""The resource server's app factory and its one protected route.

Run it with Hypercorn beside the service (see README.md here):

    RS_METADATA_URL=http://127.0.0.1:8000/.well-known/oauth-authorization-server \\
    RS_ISSUER=service RS_AUDIENCE=service-api RS_ALGORITHM=ES256 \\
    hypercorn "examples.resource_server.app:create_app()" --bind 127.0.0.1:9000
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from quart import Quart, request

from examples.resource_server.config import Config
from examples.resource_server.keys import AuthorizationServer, UpstreamError
from examples.resource_server.tokens import Refused, Verifier

logger = logging.getLogger("resource_server")
#: Seconds any call to the authorization server may take.
HTTP_TIMEOUT = 5.0


def create_app(config: Config | None = None) -> Quart:
    """The resource server; ``config`` defaults to the ``RS_*`` environment variables."""
    config = config or Config.from_environment()
    app = Quart(__name__)
    state: dict[str, Any] = {}

    @app.before_serving
    async def connect() -> None:
        http = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        server = AuthorizationServer(config, http)
        state.update(http=http, server=server, verifier=Verifier(config, server, http))

    @app.after_serving
    async def disconnect() -> None:
        await state["http"].aclose()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/whoami")
    async def whoami() -> tuple[dict[str, Any], int, dict[str, str]]:
        """The caller, as the access token says: 200, else 401 (RFC 6750 section 3)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return {"error": "invalid_request"}, 401, {"WWW-Authenticate": 'Bearer realm="rs"'}
        try:
            claims = await state["verifier"].verify(token.strip())
        except Refused as refused:
            logger.info("token refused: %s", refused)
            challenge = 'Bearer realm="rs", error="invalid_token"'
            return {"error": "invalid_token"}, 401, {"WWW-Authenticate": challenge}
        except UpstreamError as error:
            logger.warning("authorization server unavailable: %s", error)
            return {"error": "temporarily_unavailable"}, 503, {"Retry-After": "5"}
        return {"sub": claims["sub"], "jti": claims["jti"]}, 200, {"Cache-Control": "no-store"}

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        """How many times the key set was fetched (to watch the refetch limit work)."""
        server: AuthorizationServer = state["server"]
        return {"jwks_fetches": server.jwks_fetches}

    return app
