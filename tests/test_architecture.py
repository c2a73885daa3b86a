"""The layout's rules, checked on the source: which package may import what.

- ``service/security/`` holds rules that need no web framework: nothing under it imports Quart.
- ``service/db/`` is the only package that knows the database drivers and SQLAlchemy's asyncio
  layer, and the only one that sees prepared plans: domain code asks ``db.read()`` or
  ``db.write()`` for rows and never chooses how a query runs.
- No module of the service imports a private module of a library (``quart_rate_limiter`` is
  gone; a name starting with ``_`` never follows an import).

The walk reads every module's import statements with ``ast``, so an import inside a function
counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parent.parent / "service"
#: Modules only ``service/db/`` may import.
DATABASE_ONLY = (
    "sqlalchemy.ext.asyncio",
    "aiosqlite",
    "asyncpg",
    "service.db.fast.prepared",
    "service.db.fast.postgres",
    "service.db.fast.read_lane",
    "service.db.fast.sqlite_inline",
    "service.db.library_internals",
)
FRAMEWORKS = ("quart", "quart_schema", "quart_cors", "hypercorn", "werkzeug", "flask")


def modules(under: Path = SERVICE) -> list[Path]:
    return sorted(under.rglob("*.py"))


def imported(path: Path) -> Iterator[str]:
    """Every module name ``path`` imports (``from a.b import c`` names ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def names(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize("path", modules(), ids=str)
def test_imports_are_absolute(path: Path) -> None:
    """Relative imports would slip past the rules above, which read module names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = [
        node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert not relative, f"{path}: relative imports on lines {relative}"


def test_the_walk_sees_the_whole_package() -> None:
    found = {path.relative_to(SERVICE).as_posix() for path in modules()}
    assert {"app.py", "db/engine.py", "security/tokens.py", "web/openapi.py"} <= found


@pytest.mark.parametrize("path", modules(SERVICE / "security"), ids=str)
def test_security_rules_import_no_web_framework(path: Path) -> None:
    framework = [module for module in imported(path) if names(module, FRAMEWORKS)]
    assert not framework, f"{path} imports {framework}"


@pytest.mark.parametrize("path", [p for p in modules() if SERVICE / "db" not in p.parents], ids=str)
def test_only_the_data_layer_knows_drivers_and_prepared_plans(path: Path) -> None:
    known = [module for module in imported(path) if names(module, DATABASE_ONLY)]
    assert not known, f"{path} imports {known}: that is the data layer's business"


@pytest.mark.parametrize("path", modules(), ids=str)
def test_no_private_module_of_a_library_is_imported(path: Path) -> None:
    private = [
        module
        for module in imported(path)
        if not module.startswith("service")
        and any(part.startswith("_") and part != "__future__" for part in module.split("."))
    ]
    assert not private, f"{path} imports {private}"


def test_the_check_would_catch_a_forbidden_import(tmp_path: Path) -> None:
    """The rules above can fail: a module that breaks each one is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from quart import request\n"
        "def later():\n    import asyncpg\n"
        "from service.db.fast.prepared import Plans\n"
        "from redis._parsers import x\n"
    )
    found = list(imported(bad))
    assert [m for m in found if names(m, FRAMEWORKS)] == ["quart", "quart.request"]
    assert {"asyncpg", "service.db.fast.prepared"} <= {m for m in found if names(m, DATABASE_ONLY)}
    assert "redis._parsers" in found
