"""Typed settings: every environment variable the service reads, its default and its validation.

Nothing else in the package reads ``os.environ``. Values come, in order of precedence, from
keyword arguments (tests), the process environment (12-factor, Heroku config vars) and the
per-environment file ``config/<APP_ENV>.env``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from service.mail.addresses import single_mailbox
from service.mail.smtp_url import parse_smtp_url
from service.security import keys
from service.security.discovery import is_absolute_base_url
from service.security.secret_box import decode_key

AppEnv = Literal["development", "testing", "production"]
JwtAlgorithm = keys.Algorithm

#: A secret shorter than this is refused in production (HS256 wants >= 256 bits, RFC 7518 3.2).
MIN_SECRET_LENGTH = 32
#: Values people paste from examples; never accepted as a production secret.
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", "replace-me"}
#: An origin as browsers send it in the ``Origin`` header (RFC 6454 section 6.1).
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
#: A client id of INTROSPECTION_CLIENTS (it travels form-encoded in HTTP Basic, RFC 6749 2.3.1).
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Hosts that never leave the machine: plain http to them is no exposure.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Words of example values ("change-me-to-something-random..."); a secret containing one is refused.
PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replace_me",
    "your-secret",
)


#: ``config/`` of the checkout the package runs from (an installed wheel has none).
CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent / "config"


def config_dir() -> Path:
    """Where the per-environment ``.env`` files and ``hypercorn.toml`` live.

    ``CONFIG_DIR`` if set, else ``config/`` under the working directory, else the checkout's
    ``config/``: ``uv run --project path/to/checkout service serve`` from another directory
    reads the checkout's files (``instance/`` and a relative SQLite path stay relative to the
    working directory).
    """
    if "CONFIG_DIR" in os.environ:
        return Path(os.environ["CONFIG_DIR"])
    local = Path("config")
    if local.is_dir() or not CHECKOUT_CONFIG.is_dir():
        return local
    return CHECKOUT_CONFIG


def instance_dir() -> Path:
    """Local, git-ignored state of a development checkout (SQLite file, generated secret)."""
    return Path(os.environ.get("INSTANCE_DIR", "instance"))


class Settings(BaseSettings):
    """The service's configuration. Field names are the environment variable names, lower-cased."""

    # Inputs stay out of error messages: they would print a refused SECRET_KEY into the logs.
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, validate_default=True, hide_input_in_errors=True
    )

    app_env: AppEnv = Field("development", description="development, testing or production.")
    database_url: str = Field(
        "sqlite:///instance/service.db",
        description="sqlite:///path, postgresql://... or Heroku's postgres://...; required in "
        "production, where a SQLite file needs its path named.",
    )
    secret_key: SecretStr | None = Field(
        None, description="HS256: the HMAC secret that signs tokens."
    )
    jwt_algorithm: JwtAlgorithm = Field(
        "HS256",
        description=(
            "JWS `alg` of issued tokens, the only one accepted: HS256 (signed with SECRET_KEY), "
            "RS256, ES256 or Ed25519 (signed with JWT_PRIVATE_KEY). `EdDSA` is read as Ed25519 "
            "(RFC 9864); tokens then carry `alg: Ed25519`."
        ),
    )
    secret_key_fallbacks: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "HS256 rotation: comma-separated secrets that still verify tokens but never sign "
            "(the previous SECRET_KEY, or the next one before it signs)."
        ),
    )
    jwt_private_key: SecretStr | None = Field(
        None,
        description=(
            "RS256/ES256/Ed25519: the PEM private key (unencrypted) that signs tokens; "
            "`service keygen` makes one. Its `kid` is its RFC 7638 thumbprint."
        ),
    )
    jwt_private_key_file: Path | None = Field(
        None, description="A file holding the JWT_PRIVATE_KEY PEM instead (set one of the two)."
    )
    jwt_verify_keys: SecretStr | None = Field(
        None,
        description=(
            "RS256/ES256/Ed25519 rotation: PEM keys, one block after another, that still verify "
            "tokens but never sign (the previous key, or the next one before it signs). Public "
            "keys, or private ones of which only the public half is kept."
        ),
    )
    jwt_verify_keys_file: Path | None = Field(
        None, description="A file holding the JWT_VERIFY_KEYS PEM blocks instead."
    )
    jwt_issuer: str = Field("service", min_length=1, description="`iss` claim set and required.")
    jwt_audience: str = Field(
        "service-api",
        min_length=1,
        description="`aud` of access tokens, set and required (refresh tokens, device "
        "credentials and `mfa_token`s carry the token endpoint's URL instead).",
    )
    access_token_ttl: int = Field(
        900, ge=30, le=86_400, description="Access token lifetime, seconds."
    )
    refresh_token_ttl: int = Field(
        604_800, ge=300, le=31_536_000, description="Absolute session lifetime, seconds."
    )
    refresh_reuse_interval: int = Field(
        10,
        ge=0,
        le=60,
        description="Seconds after a rotation in which the refresh token just spent gets the "
        "same successor again instead of ending the session (concurrent refreshes of one "
        "client); 0: any reuse ends the session.",
    )
    bcrypt_rounds: int = Field(12, ge=4, le=20, description="bcrypt cost factor (log2 rounds).")
    password_hash_threads: int = Field(
        0,
        ge=0,
        le=64,
        description="Threads per worker process that hash and verify passwords; 0: one per CPU "
        "the process may use.",
    )
    password_hash_priority: Literal["idle", "low", "normal"] = Field(
        "idle",
        description="CPU priority of those threads: `idle` (Linux SCHED_IDLE: hashing only "
        "gets CPU no request is waiting for), `low` (nice 19) or `normal`.",
    )
    password_queue_wait: float = Field(
        2.0,
        ge=0,
        le=60,
        description="Longest a password check may wait for a hashing thread, seconds; when the "
        "queue is longer, /login, /signup and /me/password answer 503 with Retry-After at once.",
    )
    redis_url: str | None = Field(
        None,
        description="redis://... or rediss://...: rate-limit counters shared by every instance "
        "(optional; without it each process counts in its own memory).",
    )
    rate_limit_key_prefix: str = Field(
        "service:ratelimit:",
        min_length=1,
        description="Prefix of the rate-limit keys in Redis, so deployments can share one Redis.",
    )
    login_failures_per_username: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Failed password checks allowed per username (any letter case) per window; "
        "then 429 for that username, even with the right password, until the window ends.",
    )
    login_failures_per_address: int = Field(
        30,
        ge=1,
        le=100_000,
        description="Failed logins allowed per client address per window, all usernames "
        "together; then 429 for that address until the window ends.",
    )
    login_failure_window: int = Field(
        900,
        ge=1,
        le=86_400,
        description="Seconds a run of failed logins is counted, from its first failure.",
    )
    login_failures_per_device: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Failed password checks allowed per window from one device credential (a "
        "client that logged in to the account before) or one session at /me/password; such "
        "attempts count here instead of on the per-username limit.",
    )
    device_token_ttl: int = Field(
        2_592_000,
        ge=3_600,
        le=31_536_000,
        description="Lifetime of the device credential that /login issues (cookie and "
        "`device_token`), seconds.",
    )
    auth_requests_per_minute: int = Field(
        60,
        ge=0,
        le=1_000_000,
        description="Requests per client address per minute to each of /signup, /login, "
        "/login/mfa, /refresh, /logout and /revoke (bursts of this many allowed); then 429. 0 "
        "turns this limit off.",
    )
    trusted_proxy_hops: int = Field(
        0,
        ge=0,
        le=10,
        description="Proxies in front of the service that append to X-Forwarded-For; the "
        "client address is the entry that many from the right. 0 ignores the header (no "
        "proxy: a client could forge it); set 1 on Heroku (its router).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins whose pages may call the API from a browser (CORS), "
        "comma-separated, each `scheme://host[:port]`, or `*` for any; none by default.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO (one access line per request), WARNING or ERROR."
    )
    port: int = Field(
        8000, ge=1, le=65_535, description="Port of `service serve`; production needs it set."
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger request bodies get 413."
    )
    http2_cleartext: bool = Field(
        False,
        description="Serve HTTP/2 without TLS (prior knowledge or Upgrade: h2c); off, prior "
        "knowledge gets 505 and an h2c upgrade is served as HTTP/1.1: behind the router only "
        "HTTP/1.1 is spoken.",
    )
    db_pool_size: int = Field(10, ge=1, le=100, description="Connections per worker (PostgreSQL).")
    db_pool_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds a request waits for a free pooled connection; then 503.",
    )
    db_statement_timeout: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Seconds a request may wait for the database, all its calls together "
        "(statements, commits, pings, waits for a connection; SQLite: a write's wait for the "
        "write lock); then 503 and a call cut short discards its connection. Outside a "
        "request (commands, the mail sender) each call gets this long. PostgreSQL: also its "
        "server-side `statement_timeout`.",
    )
    database_fast_path: bool = Field(
        True,
        description="The data layer's fast path: prepared plans run on the driver, a read "
        "lane of long-lived connections and the session memory with its LISTEN connection "
        "(PostgreSQL), reads inline on the event loop (SQLite). false: every read checks a "
        "connection out of the pool and every request checks its session in the database "
        "(SESSION_CACHE has no effect). Figures: docs/benchmark.md.",
    )
    session_cache: bool = Field(
        True,
        description="PostgreSQL: each worker remembers the sessions it found live and forgets "
        "them when any instance revokes one (LISTEN/NOTIFY, one more connection per worker), "
        "so most authenticated requests skip the session query; other workers refuse a revoked "
        "session as soon as the notice reaches them (milliseconds, at most 1 s). false: every "
        "request asks the database, and revocation is refused at once everywhere. SQLite "
        "always asks (its check costs microseconds).",
    )
    db_connect_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds to open a PostgreSQL connection (TCP and start-up); then 503.",
    )
    public_base_url: str | None = Field(
        None,
        description="The absolute URL clients reach the service at (`https://api.example.com`, "
        "no query or fragment): the start of links in emails and of the endpoint URLs that "
        "/.well-known/oauth-authorization-server publishes. Unset: emails link to "
        "http://localhost:PORT outside production, and discovery uses JWT_ISSUER when that is "
        "an http(s) URL, else answers 404. https in production (required there when email is "
        "on), except on loopback. Its token endpoint URL is the `aud` of refresh tokens and "
        "device credentials: changing it ends every session.",
    )
    introspection_clients: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="Resource servers allowed to call /introspect (RFC 7662), comma-separated "
        "`client_id:secret` pairs; they authenticate with HTTP Basic. Secrets: at least "
        f"{MIN_SECRET_LENGTH} random characters, no commas. None by default: /introspect "
        "refuses every caller with 401.",
    )
    mfa_encryption_key: SecretStr | None = Field(
        None,
        description="Key that encrypts the TOTP secrets in the database (AES-256-GCM): 32 "
        "random bytes in base64url (docs/mfa.md says how to make one). Required in production; "
        "development generates one into `instance/mfa_key`. Changing it disables every "
        "enrolled authenticator.",
    )
    mfa_issuer: str = Field(
        "service",
        min_length=1,
        max_length=64,
        description="The name authenticator apps show beside the account (the issuer of the "
        "`otpauth://` URI).",
    )
    mfa_token_ttl: int = Field(
        300,
        ge=30,
        le=900,
        description="Seconds the `mfa_token` of a password login stays valid for /login/mfa.",
    )
    idempotency_key_ttl: int = Field(
        86_400,
        ge=60,
        le=30 * 86_400,
        description="Seconds an `Idempotency-Key`'s answer is replayed to retries (24 h).",
    )
    purge_after: int = Field(
        30 * 86_400,
        ge=0,
        le=3650 * 86_400,
        description="Seconds `service purge` keeps a session after it expired or was revoked "
        "(30 days), for the record of who logged in.",
    )

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

    # The OpenAPI document's info (also the docs page's heading): the API as its readers know it.
    api_title: str = Field(
        "Accounts and Items API",
        min_length=1,
        max_length=100,
        pattern=r"^[^\r\n]+$",
        description="The title of the OpenAPI document (`info.title`) and of the /docs page; "
        "plain text on one line.",
    )
    api_description: str = Field(
        "Sign up, log in for a short-lived access token and a rotating refresh token, and keep "
        "your own items; admins also manage accounts under /admin. Click Authorize and enter a "
        "username and password (the OAuth2 password flow calls POST /login), then Try it out "
        "on any operation. Errors are application/problem+json (RFC 9457).",
        min_length=1,
        max_length=4000,
        description="The description of the OpenAPI document (`info.description`), shown under "
        "the title of the /docs page, which renders it as Markdown (CommonMark).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(
                "use sqlite:///path/to/file.db, postgresql://... or postgres://... "
                f"(got the scheme {scheme!r})"
            )
        return value

    @field_validator("jwt_algorithm", mode="before")
    @classmethod
    def _current_algorithm_name(cls, value: object) -> object:
        return keys.ALGORITHM_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator(
        "jwt_private_key",
        "jwt_private_key_file",
        "jwt_verify_keys",
        "jwt_verify_keys_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key_fallbacks", mode="before")
    @classmethod
    def _split_fallbacks(cls, value: object) -> object:
        if isinstance(value, str):
            return [secret.strip() for secret in value.split(",") if secret.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        """A browser sends ``Origin: https://host[:port]``, in lower case; nothing else matches."""
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port], "
                    "without a path or a trailing slash"
                )
        return [origin.lower() for origin in origins]

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

    @model_validator(mode="after")
    def _email_ready_for_production(self) -> Settings:
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
        if self.public_base_url is None or not _secure_url(self.public_base_url):
            raise ValueError(
                "PUBLIC_BASE_URL must be the service's https:// address in production: "
                "emailed links carry one-time tokens"
            )
        if single_mailbox(self.mail_from).domain.lower() == "localhost":
            raise ValueError("MAIL_FROM must be an address at your domain in production")
        return self

    @property
    def link_base(self) -> str:
        """Where links in emails start: ``PUBLIC_BASE_URL``, else (never in production with
        email on, see ``_email_ready_for_production``) this machine's development address."""
        return self.public_base_url or f"http://localhost:{self.port}"

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _blank_base_url_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            return value or None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _absolute_base_url(cls, value: str | None) -> str | None:
        if value is not None and not is_absolute_base_url(value):
            raise ValueError(
                "write an absolute http(s) URL such as https://api.example.com, without "
                "user name, query or fragment"
            )
        return value

    @field_validator("introspection_clients", mode="before")
    @classmethod
    def _split_clients(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        clients: dict[str, str] = {}
        for pair in (part.strip() for part in value.split(",")):
            if not pair:
                continue
            client_id, separator, secret = pair.partition(":")
            if not separator or not client_id.strip() or not secret:
                raise ValueError("write comma-separated client_id:secret pairs")
            if client_id.strip() in clients:
                raise ValueError(f"client id {client_id.strip()!r} is listed twice")
            clients[client_id.strip()] = secret
        return clients

    @field_validator("introspection_clients")
    @classmethod
    def _strong_client_secrets(cls, clients: dict[str, SecretStr]) -> dict[str, SecretStr]:
        """Client secrets guard every session's state; they are machine secrets, never typed,
        so they are held to the production rule of SECRET_KEY in every environment."""
        for client_id, secret in clients.items():
            if not _CLIENT_ID.fullmatch(client_id):
                raise ValueError(
                    f"client id {client_id!r}: use ASCII letters, digits and . _ - only"
                )
            _refuse_weak_secret(f"the secret of {client_id!r}", secret.get_secret_value())
        return clients

    @model_validator(mode="after")
    def _require_https_base_url_in_production(self) -> Settings:
        """RFC 8414 section 2 and RFC 6749 section 3.2: endpoints are reached over TLS; a
        loopback address (a local test of the production set-up) is the one exception."""
        base = self.public_base_url
        if self.app_env == "production" and base is not None and not _secure_url(base):
            raise ValueError("PUBLIC_BASE_URL must be an https URL in production")
        return self

    @model_validator(mode="after")
    def _verification_needs_email(self) -> Settings:
        """Nobody could ever verify an address, so every account with one would be locked out."""
        if self.require_verified_email and not self.email_enabled:
            raise ValueError(
                "REQUIRE_VERIFIED_EMAIL is on but the service sends no email (EMAIL_ENABLED): "
                "nobody could verify an address; turn one on or the other off"
            )
        return self

    @model_validator(mode="after")
    def _require_a_strong_secret(self) -> Settings:
        """In production an HS256 secret must be strong; RS256/ES256/Ed25519 need no secret."""
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if self.app_env != "production" or self.jwt_algorithm != "HS256":
            return self
        if not secret:
            raise ValueError("SECRET_KEY must be set in production")
        _refuse_weak_secret("SECRET_KEY", secret)
        for fallback in self.secret_key_fallbacks:
            _refuse_weak_secret("SECRET_KEY_FALLBACKS", fallback.get_secret_value())
        return self

    @field_validator("mfa_encryption_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("mfa_encryption_key")
    @classmethod
    def _mfa_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _require_fitting_key_settings(self) -> Settings:
        """Key settings that fit the algorithm; whether the keys themselves parse and fit is
        checked when they are loaded (``service.keyring``), still before anything serves."""
        if self.jwt_algorithm == "HS256":
            for name in ("jwt_private_key", "jwt_private_key_file", "jwt_verify_keys_file"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name.upper()} is set but JWT_ALGORITHM is HS256: set JWT_ALGORITHM "
                        "to the algorithm of the key (RS256, ES256 or Ed25519)"
                    )
            if self.jwt_verify_keys is not None:
                raise ValueError("JWT_VERIFY_KEYS is set but JWT_ALGORITHM is HS256")
            return self
        if self.secret_key_fallbacks:
            raise ValueError(
                f"SECRET_KEY_FALLBACKS only applies to HS256, not {self.jwt_algorithm}; "
                "older keys go in JWT_VERIFY_KEYS"
            )
        for name in ("JWT_PRIVATE_KEY", "JWT_VERIFY_KEYS"):
            if (
                getattr(self, name.lower()) is not None
                and getattr(self, f"{name.lower()}_file") is not None
            ):
                raise ValueError(f"set {name} or {name}_FILE, not both")
        if self.jwt_private_key is None and self.jwt_private_key_file is None:
            algorithm = self.jwt_algorithm
            raise ValueError(
                f"JWT_ALGORITHM={algorithm} needs a private key: set JWT_PRIVATE_KEY to a PEM "
                "private key or JWT_PRIVATE_KEY_FILE to the path of one "
                f"(`service keygen --algorithm {algorithm}` makes one)"
            )
        return self

    @model_validator(mode="after")
    def _require_an_mfa_key_in_production(self) -> Settings:
        """Production needs its own key from the start: one made up per process or per
        instance would leave every instance unable to read the others' secrets."""
        if self.app_env == "production" and self.mfa_encryption_key is None:
            raise ValueError(
                "MFA_ENCRYPTION_KEY must be set in production: 32 random bytes in base64url, "
                '(python -c "import base64, os; '
                'print(base64.urlsafe_b64encode(os.urandom(32)).decode())")'
            )
        return self

    @model_validator(mode="after")
    def _require_a_named_database_in_production(self) -> Settings:
        """The default file under ``instance/`` sits on the machine's disk, which on a dyno is
        wiped at every restart: production names its database, even a SQLite file."""
        if self.app_env == "production" and "database_url" not in self.model_fields_set:
            raise ValueError(
                "DATABASE_URL must be set in production: a postgresql:// URL, or "
                "sqlite:///PATH for a SQLite file on a disk that outlives restarts"
            )
        return self


def _secure_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" or parts.hostname in LOOPBACK_HOSTS


def _refuse_weak_secret(name: str, secret: str) -> None:
    lowered = secret.lower()
    if lowered in PLACEHOLDER_SECRETS or any(word in lowered for word in PLACEHOLDER_WORDS):
        raise ValueError(f"{name} is a placeholder value; generate a random one")
    if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < 10:
        raise ValueError(
            f"{name} is too weak: use at least {MIN_SECRET_LENGTH} random characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )


class ConfigurationError(Exception):
    """A setting is missing or invalid. The message names each variable and is safe to print."""


def load_settings() -> Settings:
    """Settings from the environment and ``config/<APP_ENV>.env``; ``ConfigurationError`` if bad."""
    app_env = os.environ.get("APP_ENV", "development")
    env_file = config_dir() / f"{app_env}.env"
    try:
        return Settings(_env_file=env_file if env_file.is_file() else None)
    except ValidationError as error:
        problems = "; ".join(_describe(error))
        raise ConfigurationError(f"invalid configuration (APP_ENV={app_env}): {problems}") from None
    except SettingsError as error:
        message = " ".join(str(error).split())
        raise ConfigurationError(f"invalid configuration (APP_ENV={app_env}): {message}") from None


class _DefaultSettings(Settings):
    """Settings from keyword arguments and defaults only: no environment, no ``.env`` file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def default_settings(**values: Any) -> Settings:
    """Settings from ``values`` and the defaults alone, whatever the environment says."""
    return _DefaultSettings(**values)


@contextmanager
def exit_on_configuration_error() -> Iterator[None]:
    """For process entry points: a ``ConfigurationError`` ends the process with its message.

    A ``SystemExit`` carrying text prints that text alone, on one line, without a traceback,
    also from a Hypercorn worker (multiprocessing writes it to stderr), and the exit status is 1.
    """
    try:
        yield
    except ConfigurationError as error:
        raise SystemExit(f"service: {error}") from None


def load_settings_or_exit() -> Settings:
    """``load_settings`` for process entry points: a bad setting ends the process."""
    with exit_on_configuration_error():
        return load_settings()


def _describe(error: ValidationError) -> list[str]:
    """One line per failed setting, named as its environment variable; values are never shown."""
    lines = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["loc"]:
            lines.append(f"{str(item['loc'][0]).upper()}: {message}")
        else:  # a rule across settings; its message names the variables
            lines.append(message)
    return lines
