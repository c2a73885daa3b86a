"""The data layer: the engine and units of work, tables, migrations, and the fast path.

The only package that knows SQLite from PostgreSQL. Domain code asks for ``db.read()`` or
``db.write()`` and runs SQLAlchemy Core statements over the tables of ``service.db.models``.

The names below load ``service.db.engine`` and ``service.db.units`` (SQLAlchemy) on first
use, so that ``service.db.ready``, the web master's start-up check, imports the drivers alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.db.engine import Database
    from service.db.units import Reader, RowMap, Writer, record, records

__all__ = ["Database", "Reader", "RowMap", "Writer", "record", "records"]


def __getattr__(name: str) -> Any:
    """PEP 562: the engine's and units' names, imported when first asked for."""
    if name == "Database":
        from service.db import engine  # noqa: PLC0415 (the point: see the module doc)

        return engine.Database
    if name in __all__:
        from service.db import units  # noqa: PLC0415 (the point: see the module doc)

        return getattr(units, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
