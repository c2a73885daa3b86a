"""The data layer: engines and units of work, tables, migrations, prepared plans.

The only package that knows SQLite from PostgreSQL. Domain code asks for ``db.read()`` or
``db.write()`` and runs SQLAlchemy Core statements over the tables of ``service.db.models``.
"""

from service.db.engine import Database, Reader, RowMap, Writer, record, records

__all__ = ["Database", "Reader", "RowMap", "Writer", "record", "records"]
