"""What the commands share: the checked settings, the one-line failure, and the services of one
command run. Imports nothing heavy until called."""

# ruff: noqa: PLC0415 (the imports inside the commands are this module's design)

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from service.config import Settings
    from service.services import Services


def checked_settings() -> Settings:
    """The settings, with the token keys they name loaded once; a problem ends the command."""
    from service.config import ConfigurationError, load_settings_or_exit
    from service.config.keyring import load_key_set

    settings = load_settings_or_exit()
    try:
        load_key_set(settings)
    except ConfigurationError as error:
        raise failure(error) from None
    return settings


def failure(error: Exception | str) -> SystemExit:
    """End the command with ``service: <one line>`` on stderr and status 1, no traceback."""
    return SystemExit(f"service: {error}")


@asynccontextmanager
async def command_services(settings: Settings) -> AsyncIterator[Services]:
    """The services for one command; an ``ApiError`` (taken, not found) or an unreachable or
    unmigrated database ends the command with status 1 and the reason."""
    from sqlalchemy.exc import DBAPIError

    from service.app import build_services
    from service.db.migrate import describe
    from service.errors import ApiError

    services = build_services(settings)
    try:
        yield services
    except ApiError as error:
        raise click.ClickException(error.detail) from None
    except (DBAPIError, OSError) as error:
        message = describe(error)
        raise click.ClickException(f"{message}, and migrated (`service migrate`)") from None
    finally:
        await services.close()
