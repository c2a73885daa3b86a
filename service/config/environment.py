"""The group every other group builds on: which environment this is, and how much it logs.

``APP_ENV`` is here, at the root of the groups, because the production rules of every group
read it. The configuration of the model (frozen, extra variables ignored, inputs kept out of
error messages) is set here once for all of them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AppEnv = Literal["development", "testing", "production"]


class EnvironmentSettings(BaseSettings):
    """``APP_ENV`` and ``LOG_LEVEL``; the base class of every group."""

    # Inputs stay out of error messages: they would print a refused SECRET_KEY into the logs.
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, validate_default=True, hide_input_in_errors=True
    )

    app_env: AppEnv = Field("development", description="development, testing or production.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO (one access line per request), WARNING or ERROR."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
