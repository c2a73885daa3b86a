"""Prepared reads: the hottest SELECTs, compiled once per dialect and run on the driver's cursor.

Every authenticated request asks two questions: is the token's session live, then (for
``GET /items/{id}``) which item is it. SQLAlchemy's per-execution work (execution context,
parameter processing, result object) costs ~20 µs in a tight loop and ~50 µs inside a request,
several times what SQLite needs to answer a primary-key lookup; together the two reads were a
quarter of the request (measured with ``bench/`` and a sampling profiler, see the README).

A ``PreparedRead`` keeps SQLAlchemy as the author of everything that matters: the SQL text
(compiled for the dialect), how each parameter is bound and how each column is read back (the
types' own ``bind_processor`` and ``result_processor``, so ``Uuid`` and ``UTCDateTime`` behave
exactly as on every other path). Only the per-call machinery is skipped: the readers of
``service.db`` run a plan on the driver itself (SQLite's cursor, asyncpg's ``fetchrow``); a
``Writer`` runs ``statement`` through SQLAlchemy inside its transaction, as usual.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Plan:
    """One statement compiled for one dialect: SQL text, parameter order and type processors."""

    sql: str
    names: tuple[str, ...]
    binders: tuple[Processor, ...]
    readers: tuple[Processor, ...]
    row_type: Callable[..., Any]

    @classmethod
    def compile(cls, statement: Select[Any], dialect: Dialect) -> Plan:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        if any(compiled.binds[name].expanding for name in names):
            raise ValueError("a prepared read takes single values, not IN lists")
        columns = list(statement.selected_columns)
        return cls(
            sql=compiled.string,
            names=names,
            binders=tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ),
            readers=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
            row_type=namedtuple("PreparedRow", [column.key for column in columns])._make,  # type: ignore[misc,attr-defined]
        )

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for these named values."""
        return tuple(
            [
                params[name] if bind is None else bind(params[name])
                for name, bind in zip(self.names, self.binders, strict=True)
            ]
        )

    def row(self, values: Sequence[Any]) -> Any:
        """A driver row as a row of the statement's columns (attribute access by column key)."""
        readers = zip(self.readers, values, strict=True)
        return self.row_type([value if read is None else read(value) for read, value in readers])


class PreparedRead:
    """A SELECT asked on nearly every request: build it once, at import, with ``bindparam``."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._plans: dict[tuple[type[Dialect], str], Plan] = {}

    def plan(self, dialect: Dialect) -> Plan:
        """The statement compiled for this dialect (driver and parameter style included)."""
        key = (type(dialect), dialect.paramstyle)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = Plan.compile(self.statement, dialect)
        return plan
