"""Where configuration files and local state live: ``CONFIG_DIR`` and ``INSTANCE_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

#: ``config/`` of the checkout the package runs from (an installed wheel has none).
CHECKOUT_CONFIG = Path(__file__).resolve().parent.parent.parent / "config"


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
