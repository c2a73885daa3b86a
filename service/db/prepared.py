"""Prepared plans: SELECTs built once, compiled once per database, run on the driver itself.

A statement built once (at import, with ``bindparam``) and run with a parameter dict is the
same query on every call, such as the session check of every authenticated request. For it,
SQLAlchemy's per-execution work (execution context, parameter processing, result object)
costs several times what the database needs to answer a primary-key lookup.

A ``Plan`` keeps SQLAlchemy as the author of everything that matters: the SQL text (compiled
for the dialect), how each parameter is bound and how each column is read back (the types'
own ``bind_processor`` and ``result_processor``, so ``Uuid`` and ``UTCDateTime`` behave
exactly as on every other path). Only the per-call machinery is skipped: the readers of
``service.db.engine`` hand ``sql`` and ``arguments`` to the driver and turn its row back with
``row``. ``Plans`` holds the plans of one database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Select
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any] | None
#: More distinct statements than any code of ours runs with parameters: a bound, not a size.
MAX_PLANS = 256


@dataclass(frozen=True, slots=True)
class Plan:
    """One statement compiled for one dialect: SQL text, parameter order and type processors."""

    sql: str
    names: tuple[str, ...]
    binders: tuple[Processor, ...]
    keys: tuple[str, ...]
    readers: tuple[Processor, ...]

    @classmethod
    def compile(cls, statement: Select[Any], dialect: Dialect) -> Plan | None:
        """The plan of ``statement``, or None if a plan cannot run it (an ``IN`` list)."""
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        if any(compiled.binds[name].expanding for name in names):
            return None
        columns = list(statement.selected_columns)
        return cls(
            sql=compiled.string,
            names=names,
            binders=tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ),
            keys=tuple(str(column.key) for column in columns),
            readers=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
        )

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for these named values."""
        return tuple(
            [
                params[name] if bind is None else bind(params[name])
                for name, bind in zip(self.names, self.binders, strict=True)
            ]
        )

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        """A driver row as the statement's columns by key."""
        readers = zip(self.keys, self.readers, values, strict=True)
        return {key: value if read is None else read(value) for key, read, value in readers}


class Plans:
    """The plans of one database, by statement (the statement object itself, not its text)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._plans: OrderedDict[int, tuple[Executable, Plan | None]] = OrderedDict()

    def plan(self, statement: Executable, params: Mapping[str, Any] | None) -> Plan | None:
        """The plan to run ``statement`` with, or None to run it through SQLAlchemy.

        Only a SELECT run with a parameter dict gets one: that is how a statement built once
        is run. A statement built per call carries its values inside and comes without.
        """
        if params is None or not isinstance(statement, Select):
            return None
        found = self._plans.get(id(statement))
        if found is not None and found[0] is statement:
            return found[1]
        plan = Plan.compile(statement, self._dialect)
        self._plans[id(statement)] = (statement, plan)
        if len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return plan
