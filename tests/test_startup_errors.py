"""A bad setting stops start-up with a short message naming the variable, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import ConfigurationError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SERVICE_COMMAND = str(Path(sys.executable).with_name("service"))
HYPERCORN_COMMAND = str(Path(sys.executable).with_name("hypercorn"))


def clean_environment(tmp_path: Path, **values: str) -> dict[str, str]:
    """The current environment without any of the service's settings, plus ``values``."""
    names = {name.upper() for name in Settings.model_fields} | {"CONFIG_DIR", "INSTANCE_DIR"}
    env = {name: value for name, value in os.environ.items() if name not in names}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/service.db", INSTANCE_DIR=str(tmp_path))
    env.update(values)
    return env


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with none of the service's variables and no config file."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    return monkeypatch


def test_production_without_a_secret_key_is_refused(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("APP_ENV", "production")
    with pytest.raises(ConfigurationError, match="SECRET_KEY must be set in production"):
        load_settings()


def test_each_bad_setting_is_named_by_its_variable(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("BCRYPT_ROUNDS", "2")
    environment.setenv("DATABASE_URL", "mysql://db/service")
    environment.setenv("LOG_LEVEL", "chatty")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "BCRYPT_ROUNDS: Input should be greater than or equal to 4" in message
    assert "DATABASE_URL:" in message
    assert "LOG_LEVEL:" in message


def test_an_unknown_app_env_is_named(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("APP_ENV", "prod")
    with pytest.raises(ConfigurationError, match="APP_ENV: Input should be"):
        load_settings()


def test_a_weak_secret_is_refused_without_printing_it(environment: pytest.MonkeyPatch) -> None:
    weak = "my-own-little-secret"
    environment.setenv("APP_ENV", "production")
    environment.setenv("SECRET_KEY", weak)
    with pytest.raises(ConfigurationError, match="SECRET_KEY is too weak") as raised:
        load_settings()
    assert weak not in str(raised.value)


def test_migrate_exits_non_zero_naming_the_missing_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [SERVICE_COMMAND, "migrate"],
        cwd=ROOT,
        env=clean_environment(tmp_path, APP_ENV="production"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "service.db").exists(), "nothing is migrated with a bad setting"


@pytest.mark.e2e
def test_hypercorn_logs_the_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [HYPERCORN_COMMAND, "--bind", "127.0.0.1:0", "--workers", "1", "service:create_app()"],
        cwd=ROOT,
        env=clean_environment(tmp_path, APP_ENV="production", SECRET_KEY="changeme"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "invalid configuration (APP_ENV=production):\n  SECRET_KEY" in result.stderr
    assert "changeme" not in result.stderr
    assert "Traceback" not in result.stderr
