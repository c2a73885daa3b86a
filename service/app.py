"""The app factory: the one place where settings, services, blueprints and handlers are wired."""

from __future__ import annotations

from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart
from quart_schema import HttpSecurityScheme, OAuth2SecurityScheme, QuartSchema

from service import worker
from service.accounts.routes import bp as accounts_bp
from service.admin.guard import require_admin_under_admin_prefix
from service.admin.routes import bp as admin_bp
from service.errors import register_error_handlers
from service.items.routes import bp as items_bp
from service.login.routes import bp as auth_bp  # sessions', with login/'s routes added
from service.logs import configure_logging
from service.mfa.routes import bp as mfa_bp
from service.oauth.routes import bp as oauth_bp
from service.services import Services
from service.sessions.bearer import require_bearer_under_protected_prefixes
from service.settings import Settings, exit_on_configuration_error, load_settings_or_exit
from service.web import access_log, cors, h2c_upgrade, request_deadline
from service.web.converters import OpaqueIdConverter
from service.web.docs import bp as docs_bp
from service.web.health import bp as health_bp
from service.web.http_edge import HttpEdge
from service.web.json import OrjsonProvider
from service.web.openapi import ServiceOpenAPIProvider, openapi_info
from service.web.requests import ApiRequest
from service.web.responses import finish_response


def create_app(settings: Settings | None = None) -> Quart:
    """Build the service. ``settings`` defaults to the environment and ``config/<APP_ENV>.env``.

    Without ``settings`` (Hypercorn's ``service:create_app()``) a bad setting or an unusable
    key ends the process with a message naming the variable; with ``settings`` it raises
    ``ConfigurationError``.
    """
    if settings is None:
        settings = load_settings_or_exit()
        with exit_on_configuration_error():
            services = Services.from_settings(settings)
    else:
        services = Services.from_settings(settings)
    configure_logging(settings)

    app = Quart(__name__)
    app.request_class = ApiRequest
    # werkzeug answers ``//items`` with a redirect to an absolute URL built from the client's
    # ``Host`` header; no path of this API has an empty segment, so such a path is a 404.
    app.url_map.merge_slashes = False
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        PROPAGATE_EXCEPTIONS=False,
    )
    QuartSchema(
        app,
        info=openapi_info(settings),
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        security_schemes={
            "bearerAuth": HttpSecurityScheme(scheme="bearer", bearer_format="JWT"),
            "oauth2Password": OAuth2SecurityScheme(
                flows={"password": {"tokenUrl": "/login", "scopes": {}}}
            ),
            # Resource servers at /introspect (RFC 7662 section 2.1, INTROSPECTION_CLIENTS).
            "introspectionClient": HttpSecurityScheme(scheme="basic"),
        },
        openapi_provider_class=ServiceOpenAPIProvider,
    )
    app.json = OrjsonProvider(app)

    services.init_app(app)
    access_log.init_app(app)
    request_deadline.init_app(app, settings.db_statement_timeout)
    cors.init_app(app, settings)
    register_error_handlers(app)
    app.before_request(require_bearer_under_protected_prefixes)
    app.before_request(require_admin_under_admin_prefix)  # after authentication
    app.after_request(finish_response)
    app.url_map.converters["id"] = OpaqueIdConverter
    for blueprint in (
        auth_bp,
        mfa_bp,
        accounts_bp,
        oauth_bp,
        items_bp,
        admin_bp,
        health_bp,
        docs_bp,
    ):
        app.register_blueprint(blueprint)
    app.before_serving(worker.settle)

    @app.before_serving
    async def choose_http2_cleartext() -> None:
        h2c_upgrade.install(http2_cleartext=settings.http2_cleartext)

    if settings.trusted_proxy_hops:
        # The client address from X-Forwarded-For, as far as trusted proxies wrote it, so
        # request.remote_addr is right for sessions, limits and logs alike.
        app.asgi_app = ProxyFixMiddleware(  # type: ignore[method-assign]
            app.asgi_app, mode="legacy", trusted_hops=settings.trusted_proxy_hops
        )
    # Outermost, so it sees the request as it came off the connection.
    app.asgi_app = HttpEdge(  # type: ignore[method-assign]
        app.asgi_app,
        max_body_bytes=settings.max_body_bytes,
        http2_cleartext=settings.http2_cleartext,
    )
    return app
