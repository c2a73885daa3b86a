"""The per-app services (settings, database, limits, password hasher, token service, device
credentials, mail sender, introspection clients, the second factor's TOTP, secret box and
``mfa_token``s) and their accessor.

``create_app`` builds one ``Services`` and binds it to the app; handlers reach it through
``services()``, so there is no global engine, store or key, and tests can build as many apps
as they like. Domain functions take the ``Services`` they need as an argument and never look
it up themselves, so they also run outside a request (the command line).
"""

from __future__ import annotations

from dataclasses import dataclass

from quart import Quart, current_app

from service.db import Database
from service.db.fast.listener import Listener
from service.db.fast.live_sessions import LiveSessions, watch_sessions
from service.keyring import load_key_set, mfa_encryption_key
from service.limits import Limits
from service.mail.sender import MailSender
from service.security import audiences
from service.security.clients import ClientRegistry
from service.security.devices import DeviceCredentials
from service.security.mfa_tokens import MfaTokens
from service.security.passwords import PasswordHasher
from service.security.secret_box import SecretBox
from service.security.tokens import TokenService
from service.security.totp import Totp
from service.settings import ConfigurationError, Settings

_EXTENSION_KEY = "service"


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    limits: Limits
    passwords: PasswordHasher
    tokens: TokenService
    devices: DeviceCredentials
    #: Delivers the outbox; None when email is off (``EMAIL_ENABLED``).
    mail: MailSender | None
    introspection_clients: ClientRegistry
    totp: Totp
    secret_box: SecretBox
    mfa_tokens: MfaTokens
    #: Sessions found live, kept exact by ``session_listener``; None on SQLite or when
    #: ``SESSION_CACHE`` or ``DATABASE_FAST_PATH`` is off (every request asks the database).
    live_sessions: LiveSessions | None = None
    session_listener: Listener | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build every service; ``ConfigurationError`` if a configured key cannot be used or
        ``JWT_AUDIENCE`` is the audience of the service's own tokens (``audiences``)."""
        key_set = load_key_set(settings)
        own_audience = audiences.token_endpoint_audience(
            settings.public_base_url, settings.jwt_issuer
        )
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
        return cls(
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

    def init_app(self, app: Quart) -> None:
        """Bind to ``app``; the mail sender runs while it serves unless ``MAIL_SEND_IN_WEB``
        is off (a ``service send-mail`` process sends instead)."""
        app.extensions[_EXTENSION_KEY] = self
        if self.mail is not None and self.settings.mail_send_in_web:
            app.before_serving(self.mail.start)
        if self.session_listener is not None:
            app.before_serving(self._listen_for_revocations)
        app.after_serving(self.close)

    async def _listen_for_revocations(self) -> None:
        assert self.session_listener is not None
        self.session_listener.start()

    async def close(self) -> None:
        """Stop the mail sender and the revocation listener, then close the database pools,
        the limit store's connections and the hashing threads."""
        if self.mail is not None:
            await self.mail.stop()
        if self.session_listener is not None:
            await self.session_listener.stop()
        self.passwords.close()
        await self.db.dispose()
        await self.limits.close()


def services(app: Quart | None = None) -> Services:
    """The services of ``app``, by default of the app handling the current request."""
    found: Services = (app or current_app).extensions[_EXTENSION_KEY]
    return found
