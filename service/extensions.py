"""The per-app services (settings, database, password hasher, token service) and their accessor.

``create_app`` builds one ``Services`` and binds it to the app; handlers reach it through
``services()``, so there is no global engine or key and tests can build as many apps as they like.
"""

from __future__ import annotations

from dataclasses import dataclass

from quart import Quart, current_app

from service.db import Database
from service.security.passwords import PasswordHasher
from service.security.tokens import TokenService
from service.settings import Settings

_EXTENSION_KEY = "service"


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    passwords: PasswordHasher
    tokens: TokenService

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            db=Database(settings),
            passwords=PasswordHasher(rounds=settings.bcrypt_rounds),
            tokens=TokenService(
                keys=settings.key_set(),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            ),
        )

    def init_app(self, app: Quart) -> None:
        app.extensions[_EXTENSION_KEY] = self


def services() -> Services:
    """The services of the app handling the current request."""
    found: Services = current_app.extensions[_EXTENSION_KEY]
    return found
