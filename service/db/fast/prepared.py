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
#: More distinct statements than any code of ours runs with parameters: a bound, not a size
#: (least recently used plans go first).
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
        """The plan of ``statement``, or None if a plan cannot run it.

        A plan takes every value from the caller's parameters, one placeholder each: a value
        written into the statement (``Item.name == "x"``, ``.limit(5)``) or an ``IN`` list
        (as many placeholders as values) leaves it to SQLAlchemy, and so do columns whose keys
        repeat (a join), which a row mapping could not hold apart.
        """
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        if any(bind.expanding or not bind.required for bind in binds):
            return None
        columns = list(statement.selected_columns)
        keys = tuple(str(column.key) for column in columns)
        if len(set(keys)) != len(keys):
            return None
        return cls(
            sql=compiled.string,
            names=names,
            binders=tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ),
            keys=keys,
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
            self._plans.move_to_end(id(statement))
            return found[1]
        plan = Plan.compile(statement, self._dialect)
        self._plans[id(statement)] = (statement, plan)
        if len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return plan
