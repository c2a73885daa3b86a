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
    assert {"app.py", "db/engine.py", "security/tokens/session.py", "web/openapi.py"} <= found


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


# --- the layers -------------------------------------------------------------------------------

#: Each top-level package or module of ``service/`` and its layer, bottom to top. An import may
#: go to the same layer or a lower one; features (layer 4) may import each other, but their
#: package graph has no cycle (``test_feature_packages_import_each_other_without_a_cycle``).
LAYERS: dict[str, int] = {
    "security": 0,  # framework-free rules
    "config": 1,  # settings and key loading
    "db": 2,  # the plain path, and the optional fast path in db/fast/
    "logs": 2,
    "limits": 3,
    "mail": 3,
    "web": 3,
    "errors": 3,
    "schemas": 3,
    "services": 3,  # the container and its accessor: features call services()
    "idempotency": 4,
    "accounts": 4,
    "sessions": 4,
    "mfa": 4,
    "login": 4,  # the password grant and its second step, above accounts, mfa and sessions
    "oauth": 4,
    "items": 4,
    "admin": 4,
    "app": 5,  # wires everything
    "__init__": 5,  # the package itself: ``create_app``, re-exported from app.py
    "cli": 6,
}
FEATURES = 4
MAX_MODULES_DIRECTLY_UNDER_SERVICE = 10
MAX_MODULE_LINES = 400


def top_level(relative: str) -> str:
    """``config/settings.py`` -> ``config``, ``app.py`` -> ``app``."""
    return relative.split("/", 1)[0].removesuffix(".py")


def service_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for each import of a module of the service by ``path``.

    ``from service.web import worker`` names ``service.web.worker`` when that is a module, and
    ``service.web`` otherwise; ``from service import create_app`` names the package itself.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if names(alias.name, ("service",)):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not names(node.module, ("service",)):
                continue
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield node.lineno, candidate if is_module(candidate) else node.module


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (SERVICE / relative).with_suffix(".py").is_file() or (SERVICE / relative).is_dir()


def layer_of_module(name: str) -> str:
    """``service.config.keyring`` -> ``config``; ``service`` -> ``__init__``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(under: Path = SERVICE) -> list[str]:
    """Every import in ``under`` that goes to a higher layer, as ``file:line imports module``."""
    found = []
    for path in modules(under):
        relative = path.relative_to(under).as_posix()
        own = LAYERS.get(top_level(relative), 0)
        for line, module in service_imports(path):
            if LAYERS.get(layer_of_module(module), 0) > own:
                found.append(f"service/{relative}:{line} imports {module}")
    return found


def feature_graph(under: Path = SERVICE) -> dict[str, set[str]]:
    """Which feature package imports which other feature package."""
    graph: dict[str, set[str]] = {}
    for path in modules(under):
        package = top_level(path.relative_to(under).as_posix())
        if LAYERS.get(package) != FEATURES:
            continue
        for _, module in service_imports(path):
            target = layer_of_module(module)
            if LAYERS.get(target) == FEATURES and target != package:
                graph.setdefault(package, set()).add(target)
    return graph


def a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    finished: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in finished:
            return None
        for successor in sorted(graph.get(node, ())):
            cycle = visit(successor, [*path, node])
            if cycle:
                return cycle
        finished.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_every_top_level_module_has_a_layer() -> None:
    tops = {top_level(path.relative_to(SERVICE).as_posix()) for path in modules()}
    assert not tops - set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def test_few_modules_sit_directly_under_service() -> None:
    direct = sorted(path.name for path in SERVICE.glob("*.py"))
    assert len(direct) <= MAX_MODULES_DIRECTLY_UNDER_SERVICE, (
        f"{len(direct)} modules directly under service/ (at most "
        f"{MAX_MODULES_DIRECTLY_UNDER_SERVICE}): {direct}; move some into a package"
    )


def test_no_module_is_too_long() -> None:
    """Migrations aside: each is one revision, written once and never edited."""
    lengths = {
        path.relative_to(SERVICE).as_posix(): len(path.read_text().splitlines())
        for path in modules(SERVICE)
        if "migrations" not in path.relative_to(SERVICE).parts
    }
    too_long = {
        name: length for name, length in sorted(lengths.items()) if length > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}; split them"


def test_imports_go_to_the_same_layer_or_a_lower_one() -> None:
    upward = upward_imports()
    assert not upward, "imports going up a layer:\n" + "\n".join(upward)


def test_feature_packages_import_each_other_without_a_cycle() -> None:
    cycle = a_cycle(feature_graph())
    assert cycle is None, "feature packages import each other in a cycle: " + " -> ".join(cycle)


def test_the_layer_checks_would_catch_a_bad_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each check above can fail: a copy of the layout with an upward import, a cycle of
    features, a long module and one module too many is caught by each."""
    root = tmp_path / "service"
    for package in ("config", "db", "items", "accounts", "admin"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "config" / "settings.py").write_text("from service.db import engine\n")
    (root / "db" / "engine.py").write_text("from service.config.settings import Settings\n")
    (root / "items" / "queries.py").write_text("from service.accounts import x\n")
    (root / "accounts" / "flows.py").write_text("import service.admin.actions\n")
    (root / "admin" / "actions.py").write_text("from service.items.queries import q\n")
    for number in range(MAX_MODULES_DIRECTLY_UNDER_SERVICE + 1):
        (root / f"module_{number}.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    monkeypatch.setitem(globals(), "SERVICE", root)
    assert upward_imports(root) == ["service/config/settings.py:1 imports service.db.engine"]
    assert a_cycle(feature_graph(root)) == ["accounts", "admin", "items", "accounts"]
    with pytest.raises(AssertionError, match="modules directly under service/"):
        test_few_modules_sit_directly_under_service()
    with pytest.raises(AssertionError, match="over 400 lines"):
        test_no_module_is_too_long()
