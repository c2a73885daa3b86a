"""Mail settings: the SMTP server, whether email is on, the sender and its outbox, and the
email links' lifetimes and rates."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from service.config.environment import EnvironmentSettings
from service.config.smtp_url import parse_smtp_url
from service.security.mailboxes import single_mailbox


class MailSettings(EnvironmentSettings):
    """``SMTP_URL``, ``SMTP_TIMEOUT``, ``EMAIL_*``, ``MAIL_*``, ``RESET_TOKEN_TTL``,
    ``REQUIRE_VERIFIED_EMAIL``."""

    smtp_url: SecretStr | None = Field(
        None,
        description="The SMTP server that delivers email: `smtp://user:password@host:587` "
        "(STARTTLS), `smtps://...:465` (implicit TLS) or `smtp+plain://host:25` (no TLS); "
        "without it, outside production, emails are written to the log instead.",
    )
    email_enabled: bool = Field(
        "auto",  # type: ignore[assignment]  # resolved to a bool by _resolve_email_enabled
        description="`auto` (on when SMTP_URL is set or APP_ENV is not production), `true` or "
        "`false`: whether features that send email are offered. On in production needs "
        "SMTP_URL.",
    )
    mail_from: str = Field(
        "service <noreply@localhost>",
        description="The `From` of every email, `address` or `Name <address>`; in production "
        "an address at a real domain (receivers refuse localhost).",
    )
    mail_send_in_web: bool = Field(
        True,
        description="Each web worker runs a mail sender. Set false when the Procfile's "
        "`worker: service send-mail` process sends instead.",
    )
    mail_max_attempts: int = Field(
        10,
        ge=1,
        le=100,
        description="Delivery attempts of one email before it is given up (a permanent 5xx "
        "refusal gives up at once).",
    )
    mail_retry_delay: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds before the first retry of a temporary failure; each next wait "
        "doubles, up to an hour.",
    )
    mail_lease: float = Field(
        300.0,
        ge=1,
        le=86_400,
        description="Seconds a sender holds an email it is delivering; if the sender dies, "
        "another one takes the email after this.",
    )
    mail_poll_interval: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds between a sender's looks for work committed by other processes "
        "(an email queued in the same process wakes its sender at once).",
    )
    smtp_timeout: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Seconds to connect to the SMTP server, and for each of its answers.",
    )
    email_token_ttl: int = Field(
        86_400,
        ge=300,
        le=30 * 86_400,
        description="Seconds an email verification link stays valid (24 h).",
    )
    reset_token_ttl: int = Field(
        1_800,
        ge=60,
        le=86_400,
        description="Seconds a password reset link stays valid (30 minutes).",
    )
    require_verified_email: bool = Field(
        False,
        description="Refuse /login (403 after the password checked out) to accounts whose "
        "email address is not verified yet; accounts without an address are not affected.",
    )
    email_requests_per_hour: int = Field(
        5,
        ge=1,
        le=10_000,
        description="Messages per hour (bursts of this many), then 429: signup links per "
        "address and client network; /me/email and resend links per account; reset links "
        "per address and client network, and per network; notices to an address's holder "
        "per address (dropped beyond).",
    )

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _empty_smtp_url_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("smtp_url")
    @classmethod
    def _parseable_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_smtp_url(value.get_secret_value())
        return value

    @field_validator("email_enabled", mode="before")
    @classmethod
    def _resolve_email_enabled(cls, value: object, info: ValidationInfo) -> object:
        """``auto``: on when there is an SMTP server to send through, or outside production
        (where emails go to the log)."""
        if isinstance(value, str) and value.strip().lower() == "auto":
            return info.data.get("smtp_url") is not None or info.data.get("app_env") != (
                "production"
            )
        return value

    @field_validator("mail_from")
    @classmethod
    def _one_mailbox(cls, value: str) -> str:
        """One RFC 5322 mailbox, nothing that could add a header or a recipient."""
        return str(single_mailbox(value.strip()))

    def check_verification_needs_email(self) -> Self:
        """Nobody could ever verify an address, so every account with one would be locked out."""
        if self.require_verified_email and not self.email_enabled:
            raise ValueError(
                "REQUIRE_VERIFIED_EMAIL is on but the service sends no email (EMAIL_ENABLED): "
                "nobody could verify an address; turn one on or the other off"
            )
        return self
