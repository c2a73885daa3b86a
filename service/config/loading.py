"""Reading the settings at start-up: from the environment and ``config/<APP_ENV>.env``, or from
keyword arguments alone; a bad setting becomes one ``ConfigurationError`` line per variable,
and entry points turn that into an exit with status 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

from service.config.paths import config_dir
from service.config.settings import Settings


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
