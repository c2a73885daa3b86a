"""The one ``Settings`` class, composed of the groups of fields, and the rules across groups.

Every environment variable the service reads is a field of one group (``database``, ``tokens``,
``login``, ``web``, ``mfa``, ``mail``, all built on ``environment``); nothing else in the
package reads ``os.environ``. Values come, in order of precedence, from keyword arguments
(tests), the process environment (12-factor, Heroku config vars) and the per-environment file
``config/<APP_ENV>.env``. Field names are the environment variable names, lower-cased.
"""

from __future__ import annotations

from typing import Self

from pydantic import model_validator

from service.config.database import DatabaseSettings
from service.config.login import LoginSettings
from service.config.mail import MailSettings
from service.config.mfa import MfaSettings
from service.config.rules import secure_url
from service.config.smtp_url import parse_smtp_url
from service.config.tokens import TokenSettings
from service.config.web import WebSettings
from service.security.mailboxes import single_mailbox


# Fields are ordered from the last base to the first (pydantic walks the bases in reverse), so
# the groups are listed last to first: the table in docs/settings.md reads database first.
class Settings(
    MailSettings, MfaSettings, WebSettings, LoginSettings, TokenSettings, DatabaseSettings
):
    """The service's configuration. Field names are the environment variable names, lower-cased."""

    @model_validator(mode="after")
    def _email_ready_for_production(self) -> Self:
        """In production, email on needs a server, https links and a real sender domain."""
        if self.app_env != "production":
            return self
        if self.smtp_url is not None:
            server = parse_smtp_url(self.smtp_url.get_secret_value())
            if server.security == "none" and server.username is not None:
                raise ValueError(
                    "SMTP_URL: smtp+plain:// would send the SMTP password in clear text; use "
                    "smtp:// (STARTTLS) or smtps:// (TLS)"
                )
        if not self.email_enabled:
            return self
        if self.smtp_url is None:
            raise ValueError(
                "EMAIL_ENABLED is on in production but SMTP_URL is not set: set SMTP_URL "
                "(smtp://user:password@host:587) or EMAIL_ENABLED=false"
            )
        if self.public_base_url is None or not secure_url(self.public_base_url):
            raise ValueError(
                "PUBLIC_BASE_URL must be the service's https:// address in production: "
                "emailed links carry one-time tokens"
            )
        if single_mailbox(self.mail_from).domain.lower() == "localhost":
            raise ValueError("MAIL_FROM must be an address at your domain in production")
        return self
