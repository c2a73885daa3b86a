"""The app factory and the settings it is built from: independence, validation, secrets, URLs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import text

from service import create_app
from service.config import ConfigurationError, Settings, load_settings
from service.config.keyring import signing_secret
from service.db.engine import async_url
from tests.helpers import TEST_MFA_KEY, TEST_SECRET, make_settings, sign_up

STRONG_SECRET = "Zq8v3N1xK7pW2mR9tY4bL6cH0dF5gJ-aQeUiOs_"


def production(**values: object) -> Settings:
    values.setdefault("mfa_encryption_key", TEST_MFA_KEY)
    values.setdefault("database_url", "postgresql://db.invalid/service")
    return Settings(_env_file=None, app_env="production", **values)  # type: ignore[arg-type]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No service variables from the outer environment; config files read from ``tmp_path``."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path / "instance"))
    return tmp_path


# --- the factory ----------------------------------------------------------------------------


async def test_create_app_builds_independent_apps(settings: Settings) -> None:
    first = create_app(settings)
    second = create_app(make_settings(settings.database_url, secret_key="another-" + TEST_SECRET))

    assert first is not second
    assert first.extensions["service"] is not second.extensions["service"]
    assert first.extensions["service"].db is not second.extensions["service"].db
    assert first.extensions["service"].settings.secret_key != (
        second.extensions["service"].settings.secret_key
    )


async def test_a_token_of_one_app_is_refused_by_an_app_with_another_secret(
    settings: Settings, client: Client
) -> None:
    account = await sign_up(client, "alice")
    other = create_app(make_settings(settings.database_url, secret_key="other-" + TEST_SECRET))
    async with other.test_app() as test_app:
        response = await test_app.test_client().get("/me", headers=account.headers)
    assert response.status_code == 401


async def test_create_app_without_settings_reads_the_environment(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = clean_environment / "env.db"
    monkeypatch.setenv("APP_ENV", "testing")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("ACCESS_TOKEN_TTL", "120")

    app = create_app()

    loaded = app.extensions["service"].settings
    assert loaded.app_env == "testing"
    assert loaded.database_url == f"sqlite:///{database}"
    assert loaded.access_token_ttl == 120


def test_environment_overrides_the_per_environment_file(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = clean_environment / "config"
    config.mkdir()
    (config / "testing.env").write_text("BCRYPT_ROUNDS=5\nACCESS_TOKEN_TTL=300\n")
    monkeypatch.setenv("APP_ENV", "testing")
    monkeypatch.setenv("ACCESS_TOKEN_TTL", "600")

    loaded = load_settings()

    assert loaded.bcrypt_rounds == 5
    assert loaded.access_token_ttl == 600


# --- validation -----------------------------------------------------------------------------


def test_production_refuses_a_missing_secret() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set in production"):
        production()


@pytest.mark.parametrize("secret", ["short", "x" * 40, "0123456789" * 2])
def test_production_refuses_a_short_or_low_entropy_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY is too weak"):
        production(secret_key=secret)


@pytest.mark.parametrize(
    "secret", ["changeme", "your-secret-key", "change-me-to-a-long-random-string-0123456789"]
)
def test_production_refuses_a_placeholder_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY is a placeholder"):
        production(secret_key=secret)


def test_production_accepts_a_strong_secret() -> None:
    assert signing_secret(production(secret_key=STRONG_SECRET)) == STRONG_SECRET


def test_a_refused_secret_is_not_echoed_in_the_error() -> None:
    with pytest.raises(ValidationError) as caught:
        production(secret_key="weak-secret-value")
    assert "weak-secret-value" not in str(caught.value)


def test_production_refusal_from_the_environment_is_clear(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigurationError, match="SECRET_KEY must be set in production"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ACCESS_TOKEN_TTL", "abc"),
        ("REFRESH_TOKEN_TTL", "-1"),
        ("BCRYPT_ROUNDS", "99"),
        ("APP_ENV", "staging"),
        ("LOG_LEVEL", "LOUD"),
        ("JWT_ISSUER", ""),
    ],
)
def test_a_bad_value_fails_with_a_message_naming_the_variable(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert "pydantic.dev" not in message


# --- development secret ---------------------------------------------------------------------


def test_development_generates_a_secret_once_and_reuses_it(clean_environment: Path) -> None:
    development = Settings(_env_file=None, app_env="development")

    secret = signing_secret(development)

    stored = clean_environment / "instance" / "secret_key"
    assert stored.read_text().strip() == secret
    assert len(secret) >= 32
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert signing_secret(development) == secret
    assert signing_secret(Settings(_env_file=None, app_env="development")) == secret
    assert [path.name for path in stored.parent.iterdir()] == ["secret_key"]


def test_development_prefers_an_explicit_secret(clean_environment: Path) -> None:
    development = Settings(_env_file=None, app_env="development", secret_key=STRONG_SECRET)
    assert signing_secret(development) == STRONG_SECRET
    assert not (clean_environment / "instance").exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_writes_are_durable_and_reads_never_write(app: Quart) -> None:
    """WAL with ``synchronous=FULL``: an acknowledged commit survives power loss."""
    database = app.extensions["service"].db
    async with database.write() as db:
        pragmas = {
            name: await db.scalar(text(f"PRAGMA {name}"))
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "foreign_keys": 1,
        "busy_timeout": 5000,  # DB_STATEMENT_TIMEOUT, 5 s by default
    }
    async with database.read() as db:
        assert await db.scalar(text("PRAGMA query_only")) == 1


# --- DATABASE_URL forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///instance/service.db", "sqlite+aiosqlite:///instance/service.db"),
        ("sqlite:////var/data/service.db", "sqlite+aiosqlite:////var/data/service.db"),
        ("sqlite+aiosqlite:///service.db", "sqlite+aiosqlite:///service.db"),
        ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgresql+asyncpg://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        (
            "postgres://u:p@db:5432/app?sslmode=require",
            "postgresql+asyncpg://u:p@db:5432/app?ssl=require",
        ),
    ],
)
def test_database_url_forms_pick_the_async_driver(given: str, expected: str) -> None:
    assert async_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("given", ["sqlite:///:memory:", "sqlite://", "sqlite+aiosqlite://"])
def test_an_in_memory_sqlite_database_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="not :memory:"):
        async_url(given)


def test_an_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        async_url("mysql://u:p@db/app")
