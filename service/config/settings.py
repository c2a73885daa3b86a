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
from service.config.rules import refuse_weak_secret, secure_url
from service.config.smtp_url import parse_smtp_url
from service.config.tokens import TokenSettings
from service.config.web import WebSettings
from service.security.mailboxes import single_mailbox


# Fields are ordered from the last base to the first (pydantic walks the bases in reverse), so
# the groups are listed last to first: the table in docs/settings.md reads database first.
class Settings(
    MailSettings, MfaSettings, WebSettings, LoginSettings, TokenSettings, DatabaseSettings
):
    """The service's configuration. Field names are the environment variable names, lower-cased.

    Each group checks its own fields; a rule that reads several fields (a group's ``check_*``,
    and the rules of production here, which read ``APP_ENV`` beside a group's values) runs in
    ``_rules_across_fields``, in the order they are reported (one at a time): with email on,
    the rule naming the emailed links comes before the general https rule of
    ``PUBLIC_BASE_URL``, and a missing ``DATABASE_URL`` is reported last.
    """

    @model_validator(mode="after")
    def _rules_across_fields(self) -> Self:
        """Every rule that reads several fields, in one fixed order: pydantic reports only the
        first that fails, and would run a group's own model validators before these."""
        for rule in (
            self._email_ready_for_production,
            self._require_https_base_url_in_production,
            self.check_verification_needs_email,
            self._require_a_strong_secret,
            self.check_fitting_key_settings,
            self._require_an_mfa_key_in_production,
            self._require_a_named_database_in_production,
        ):
            rule()
        return self

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

    def _require_https_base_url_in_production(self) -> Self:
        """RFC 8414 section 2 and RFC 6749 section 3.2: endpoints are reached over TLS; a
        loopback address (a local test of the production set-up) is the one exception."""
        base = self.public_base_url
        if self.app_env == "production" and base is not None and not secure_url(base):
            raise ValueError("PUBLIC_BASE_URL must be an https URL in production")
        return self

    def _require_a_strong_secret(self) -> Self:
        """In production an HS256 secret must be strong; RS256/ES256/Ed25519 need no secret."""
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if self.app_env != "production" or self.jwt_algorithm != "HS256":
            return self
        if not secret:
            raise ValueError("SECRET_KEY must be set in production")
        refuse_weak_secret("SECRET_KEY", secret)
        for fallback in self.secret_key_fallbacks:
            refuse_weak_secret("SECRET_KEY_FALLBACKS", fallback.get_secret_value())
        return self

    def _require_an_mfa_key_in_production(self) -> Self:
        """Production needs its own key from the start: one made up per process or per
        instance would leave every instance unable to read the others' secrets."""
        if self.app_env == "production" and self.mfa_encryption_key is None:
            raise ValueError(
                "MFA_ENCRYPTION_KEY must be set in production: 32 random bytes in base64url, "
                '(python -c "import base64, os; '
                'print(base64.urlsafe_b64encode(os.urandom(32)).decode())")'
            )
        return self

    def _require_a_named_database_in_production(self) -> Self:
        """The default file under ``instance/`` sits on the machine's disk, which on a dyno is
        wiped at every restart: production names its database, even a SQLite file."""
        if self.app_env == "production" and "database_url" not in self.model_fields_set:
            raise ValueError(
                "DATABASE_URL must be set in production: a postgresql:// URL, or "
                "sqlite:///PATH for a SQLite file on a disk that outlives restarts"
            )
        return self
