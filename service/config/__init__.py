"""The configuration: the settings (one module per group of fields, composed into ``Settings``
in ``settings``), reading them at start-up (``loading``), where files live (``paths``), the
SMTP URL form, and the token and encryption keys the settings name (``keyring``, imported on
its own: it loads the cryptography libraries).
"""

from service.config.loading import (
    ConfigurationError,
    default_settings,
    exit_on_configuration_error,
    load_settings,
    load_settings_or_exit,
)
from service.config.paths import CHECKOUT_CONFIG, config_dir, instance_dir
from service.config.settings import Settings

__all__ = [
    "CHECKOUT_CONFIG",
    "ConfigurationError",
    "Settings",
    "config_dir",
    "default_settings",
    "exit_on_configuration_error",
    "instance_dir",
    "load_settings",
    "load_settings_or_exit",
]
