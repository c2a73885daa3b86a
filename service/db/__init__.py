"""The data layer: engines and units of work, tables, migrations, prepared plans.

The only package that knows SQLite from PostgreSQL. Domain code asks for ``db.read()`` or
``db.write()`` and runs SQLAlchemy Core statements over the tables of ``service.db.models``.

The names below load ``service.db.engine`` (SQLAlchemy) on first use, so that
``service.db.ready``, the web master's start-up check, imports the drivers alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.db.engine import Database, Reader, RowMap, Writer, record, records

__all__ = ["Database", "Reader", "RowMap", "Writer", "record", "records"]


def __getattr__(name: str) -> Any:
    """PEP 562: the engine module's names, imported when first asked for."""
    if name in __all__:
        from service.db import engine  # noqa: PLC0415 (the point: see the module doc)

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
