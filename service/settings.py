"""Typed settings: every environment variable the service reads, its default and its validation.

Nothing else in the package reads ``os.environ``. Values come, in order of precedence, from
keyword arguments (tests), the process environment (12-factor, Heroku config vars) and the
per-environment file ``config/<APP_ENV>.env``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

AppEnv = Literal["development", "testing", "production"]
JwtAlgorithm = Literal["HS256"]

#: A secret shorter than this is refused in production (HS256 wants >= 256 bits, RFC 7518 3.2).
MIN_SECRET_LENGTH = 32
#: Values people paste from examples; never accepted as a production secret.
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", "replace-me"}
#: Words of example values ("change-me-to-something-random..."); a secret containing one is refused.
PLACEHOLDER_WORDS = (
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replace_me",
    "your-secret",
)


def config_dir() -> Path:
    """Where the per-environment ``.env`` files live (``config/`` under the working directory)."""
    return Path(os.environ.get("CONFIG_DIR", "config"))


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
        description="sqlite:///path, postgresql://... or Heroku's postgres://...",
    )
    secret_key: SecretStr | None = Field(None, description="HMAC secret that signs tokens.")
    jwt_algorithm: JwtAlgorithm = Field("HS256", description="JWS algorithm of issued tokens.")
    jwt_issuer: str = Field("service", min_length=1, description="`iss` claim set and required.")
    jwt_audience: str = Field(
        "service-api", min_length=1, description="`aud` claim set and required."
    )
    access_token_ttl: int = Field(
        900, ge=30, le=86_400, description="Access token lifetime, seconds."
    )
    refresh_token_ttl: int = Field(
        604_800, ge=300, le=31_536_000, description="Absolute session lifetime, seconds."
    )
    bcrypt_rounds: int = Field(12, ge=4, le=20, description="bcrypt cost factor (log2 rounds).")
    redis_url: str | None = Field(None, description="Shared rate-limit store (optional).")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated allowed origins; none by default."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    port: int = Field(8000, ge=1, le=65_535, description="Port of `service serve`.")
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger request bodies get 413."
    )
    db_pool_size: int = Field(10, ge=1, le=100, description="Connections per worker (PostgreSQL).")
    db_pool_timeout: float = Field(5.0, gt=0, le=60, description="Wait for a free connection.")

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

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _require_a_strong_secret(self) -> Settings:
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if self.app_env != "production":
            return self
        if not secret:
            raise ValueError("SECRET_KEY must be set in production")
        lowered = secret.lower()
        if lowered in PLACEHOLDER_SECRETS or any(word in lowered for word in PLACEHOLDER_WORDS):
            raise ValueError("SECRET_KEY is a placeholder value; generate a random one")
        if len(secret) < MIN_SECRET_LENGTH or len(set(secret)) < 10:
            raise ValueError(
                f"SECRET_KEY is too weak: use at least {MIN_SECRET_LENGTH} random characters "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        return self

    def signing_secret(self) -> str:
        """The HMAC secret; development and testing fall back to a generated one."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.app_env == "development":
            return _development_secret()
        return _PROCESS_SECRET


#: Testing without SECRET_KEY: a secret that lives as long as the process.
_PROCESS_SECRET = secrets.token_urlsafe(48)


def _development_secret() -> str:
    """Generate the development secret once and keep it in ``instance/secret_key``.

    Kept on disk so tokens survive a restart of the development server. The file is written
    aside and hard-linked into place, which fails if it exists: several Hypercorn workers
    starting at once all end up reading the one complete secret.
    """
    path = instance_dir() / "secret_key"
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".secret_key.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(48))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


class ConfigurationError(Exception):
    """A setting is missing or invalid. The message names each variable and is safe to print."""


def load_settings() -> Settings:
    """Settings from the environment and ``config/<APP_ENV>.env``; ``ConfigurationError`` if bad."""
    app_env = os.environ.get("APP_ENV", "development")
    env_file = config_dir() / f"{app_env}.env"
    try:
        return Settings(_env_file=env_file if env_file.is_file() else None)
    except ValidationError as error:
        problems = "\n".join(f"  {line}" for line in _describe(error))
        raise ConfigurationError(
            f"invalid configuration (APP_ENV={app_env}):\n{problems}"
        ) from None
    except SettingsError as error:
        raise ConfigurationError(f"invalid configuration (APP_ENV={app_env}): {error}") from None


def load_settings_or_exit() -> Settings:
    """``load_settings`` for process entry points: a bad setting ends the process with its message.

    A ``SystemExit`` carrying text prints that text alone, without a traceback, also from a
    Hypercorn worker (multiprocessing writes it to stderr), and the exit status is 1.
    """
    try:
        return load_settings()
    except ConfigurationError as error:
        raise SystemExit(f"service: {error}") from None


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
