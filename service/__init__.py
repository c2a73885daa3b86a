"""Async JWT-auth + CRUD HTTP API service: ``create_app`` is the one entry point.

Importing the package imports nothing else: ``service --help`` and the commands that need no
server stay fast. ``create_app`` loads the app's modules on its first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart

    from service.config import Settings


def create_app(settings: Settings | None = None) -> Quart:
    """``service.app.create_app``, imported on first use (Hypercorn's ``service:create_app()``).

    Hypercorn evaluates ``create_app()`` in the package's namespace, so the name must be a real
    function here, not a lazy module attribute.
    """
    from service.app import create_app as build  # noqa: PLC0415 (the point of this module)

    return build(settings)


__all__ = ["create_app"]
