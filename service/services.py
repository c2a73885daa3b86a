"""The per-app services (settings, database, limits, password hasher, token service, device
credentials, mail sender, introspection clients, the second factor's TOTP, secret box and
``mfa_token``s) and their accessor.

This module holds the container and builds nothing: ``service.app.build_services`` does, so
features, which call ``services()``, sit above it without importing what wires them.
``create_app`` binds one ``Services`` to the app; handlers reach it through
``services()``, so there is no global engine, store or key, and tests can build as many apps
as they like. Domain functions take the ``Services`` they need as an argument and never look
it up themselves, so they also run outside a request (the command line).
"""

from __future__ import annotations

from dataclasses import dataclass

from quart import Quart, current_app

from service.config import Settings
from service.db import Database
from service.db.fast.listener import Listener
from service.db.fast.live_sessions import LiveSessions
from service.limits import Limits
from service.mail.sender import MailSender
from service.security.clients import ClientRegistry
from service.security.passwords import PasswordHasher
from service.security.secret_box import SecretBox
from service.security.tokens.device import DeviceCredentials
from service.security.tokens.mfa import MfaTokens
from service.security.tokens.session import TokenService
from service.security.totp import Totp

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
