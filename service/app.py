"""The app factory: the one place where settings, services, blueprints and handlers are wired.

``build_services`` makes every service the settings describe (the command line uses it too);
``create_app`` binds them, the extensions, blueprints and error handlers to a Quart app.
"""

from __future__ import annotations

from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart
from quart_schema import HttpSecurityScheme, OAuth2SecurityScheme, QuartSchema

from service.accounts.routes import bp as accounts_bp
from service.admin.guard import require_admin_under_admin_prefix
from service.admin.routes import bp as admin_bp
from service.config import (
    ConfigurationError,
    Settings,
    exit_on_configuration_error,
    load_settings_or_exit,
)
from service.config.keyring import load_key_set, mfa_encryption_key
from service.db import Database
from service.db.fast.live_sessions import watch_sessions
from service.errors import register_error_handlers
from service.items.routes import bp as items_bp
from service.limits import Limits
from service.login.routes import bp as auth_bp  # sessions', with login/'s routes added
from service.logs import configure_logging
from service.mail.sender import MailSender
from service.mfa.routes import bp as mfa_bp
from service.oauth.routes import bp as oauth_bp
from service.security.clients import ClientRegistry
from service.security.passwords import PasswordHasher
from service.security.secret_box import SecretBox
from service.security.tokens import audiences
from service.security.tokens.device import DeviceCredentials
from service.security.tokens.mfa import MfaTokens
from service.security.tokens.session import TokenService
from service.security.totp import Totp
from service.services import Services
from service.sessions.bearer import require_bearer_under_protected_prefixes
from service.web import access_log, cors, h2c_upgrade, request_deadline, worker
from service.web.converters import OpaqueIdConverter
from service.web.docs import bp as docs_bp
from service.web.health import bp as health_bp
from service.web.http_edge import HttpEdge
from service.web.json import OrjsonProvider
from service.web.openapi import ServiceOpenAPIProvider, openapi_info
from service.web.requests import ApiRequest
from service.web.responses import finish_response


def build_services(settings: Settings) -> Services:
    """Build every service; ``ConfigurationError`` if a configured key cannot be used or
    ``JWT_AUDIENCE`` is the audience of the service's own tokens (``audiences``)."""
    key_set = load_key_set(settings)
    own_audience = audiences.token_endpoint_audience(settings.public_base_url, settings.jwt_issuer)
    try:
        audiences.check_distinct(own_audience, settings.jwt_audience)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    legacy = audiences.legacy_audiences(settings.jwt_audience)
    tokens = TokenService(
        keys=key_set,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        refresh_audience=own_audience,
    )
    devices = DeviceCredentials(
        keys=key_set,
        issuer=settings.jwt_issuer,
        audience=own_audience,
        ttl=settings.device_token_ttl,
        legacy_audiences=legacy,
    )
    db = Database(settings)
    watch = watch_sessions(db) if settings.session_cache else None
    return Services(
        settings=settings,
        db=db,
        limits=Limits.from_settings(settings),
        passwords=PasswordHasher(
            rounds=settings.bcrypt_rounds,
            threads=settings.password_hash_threads,
            max_wait=settings.password_queue_wait,
            priority=settings.password_hash_priority,
        ),
        tokens=tokens,
        devices=devices,
        mail=MailSender.from_settings(settings, db) if settings.email_enabled else None,
        introspection_clients=ClientRegistry(
            {
                client_id: secret.get_secret_value()
                for client_id, secret in settings.introspection_clients.items()
            }
        ),
        totp=Totp(issuer=settings.mfa_issuer),
        secret_box=SecretBox(mfa_encryption_key(settings)),
        mfa_tokens=MfaTokens(
            keys=key_set,
            issuer=settings.jwt_issuer,
            audience=own_audience,
            ttl=settings.mfa_token_ttl,
            legacy_audiences=legacy,
        ),
        live_sessions=None if watch is None else watch[0],
        session_listener=None if watch is None else watch[1],
    )


def create_app(settings: Settings | None = None) -> Quart:
    """Build the service. ``settings`` defaults to the environment and ``config/<APP_ENV>.env``.

    Without ``settings`` (Hypercorn's ``service:create_app()``) a bad setting or an unusable
    key ends the process with a message naming the variable; with ``settings`` it raises
    ``ConfigurationError``.
    """
    if settings is None:
        settings = load_settings_or_exit()
        with exit_on_configuration_error():
            services = build_services(settings)
    else:
        services = build_services(settings)
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
