"""The logging set-up: ``config/logging.toml`` applied for the settings.

``configure_logging`` applies ``config/logging.toml`` (``logging.config.dictConfig``): JSON
lines (python-json-logger) when ``APP_ENV=production``, readable lines otherwise, at
``LOG_LEVEL``. The file is looked up in ``CONFIG_DIR`` first, then in the checkout's
``config/`` (tests point ``CONFIG_DIR`` elsewhere for their ``.env`` files).
"""

from __future__ import annotations

import logging
import logging.config
import tomllib
from typing import Any

from service.config import CHECKOUT_CONFIG, Settings, config_dir

LOGGING_FILE = "logging.toml"


def logging_config(settings: Settings) -> dict[str, Any]:
    """The ``dictConfig`` dictionary of ``config/logging.toml`` for these settings.

    The file's ``stderr`` handler gets the ``json`` formatter in production and ``text``
    otherwise; the ``service`` logger gets ``LOG_LEVEL``.
    """
    config = _read_logging_file()
    config["handlers"]["stderr"]["formatter"] = (
        "json" if settings.app_env == "production" else "text"
    )
    config["loggers"]["service"]["level"] = settings.log_level
    return config


def _read_logging_file() -> dict[str, Any]:
    for directory in (config_dir(), CHECKOUT_CONFIG):
        path = directory / LOGGING_FILE
        if path.is_file():
            with path.open("rb") as file:
                return tomllib.load(file)
    raise FileNotFoundError(
        f"{LOGGING_FILE} is in neither {config_dir()} nor {CHECKOUT_CONFIG}: run from the "
        "repository root or set CONFIG_DIR to a directory that holds it"
    )


def configure_logging(settings: Settings) -> None:
    """Apply ``config/logging.toml``: JSON lines in production, readable lines otherwise.

    ``dictConfig`` would also reset the ``service.*`` loggers that exist already (their
    handlers and levels) because they sit below a configured one. A server configures once,
    but tests build many apps and may have attached a handler to ``service.security`` first:
    those loggers keep what they had.
    """
    below = [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("service.") and isinstance(logger, logging.Logger)
    ]
    kept = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in below]
    _skip_unused_record_fields()
    logging.config.dictConfig(logging_config(settings))
    for logger, handlers, level, propagate in kept:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _skip_unused_record_fields() -> None:
    """Stop filling the record fields no format of ours names (caller, thread, process).

    These are the switches of the Python logging HOWTO's "Optimization" section; the caller
    alone is found by walking the stack for every record. Tracebacks are unaffected.
    """
    logging._srcfile = None  # the HOWTO's documented switch, despite the underscore
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
