"""The suite's own layout, checked on its source, so a newcomer finds their way in it.

- Test modules import shared helpers from ``tests/helpers.py`` (and the other ``*_helpers.py``
  modules), never from ``tests/conftest.py``: pytest loads conftest itself, and a conftest that
  is also a library grows into one file holding everything.
- docs/testing.md's "Where each behaviour is tested" has one row for every ``tests/test_*.py``,
  and every file it names exists: the index a newcomer reads stays true as tests come and go.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
INDEX_PAGE = ROOT / "docs" / "testing.md"
INDEX_HEADING = "## Where each behaviour is tested"
#: A table row naming a test file in its first column.
INDEX_ROW = re.compile(r"^\| `(tests/test_\w+\.py)` \|", re.MULTILINE)
#: Any file of the suite named in the index (in a row, or in the text around the tables).
NAMED_FILE = re.compile(r"`(tests/[\w/]+\.\w+)`")
#: Where Python that could import the suite's modules lives.
SOURCES = ("tests", "harness", "bench", "scripts", "examples", "service")


def python_files() -> list[Path]:
    return sorted(path for folder in SOURCES for path in (ROOT / folder).rglob("*.py"))


def imports_conftest(source: str) -> list[int]:
    """The lines of ``source`` that import ``tests.conftest`` (any form, at any depth)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(name == "tests.conftest" or name.startswith("tests.conftest.") for name in names):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", python_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_imports_conftest(path: Path) -> None:
    """Helpers come from ``tests.helpers``; fixtures reach a test by name, not by import."""
    assert not imports_conftest(path.read_text()), f"{path}: import from tests.helpers instead"


@pytest.mark.parametrize(
    "source",
    [
        "from tests.conftest import make_settings",
        "import tests.conftest",
        "from tests import conftest",
        "def f():\n    from tests.conftest import Account  # noqa: PLC0415",
    ],
)
def test_the_import_check_notices_each_form(source: str) -> None:
    """Guards the test above: it is not vacuous."""
    assert imports_conftest(source)


def test_the_walk_sees_the_suite() -> None:
    found = {path.relative_to(ROOT).as_posix() for path in python_files()}
    assert {"tests/conftest.py", "tests/helpers.py", "service/app.py"} <= found


def index() -> str:
    """The index section of docs/testing.md, up to the next section of the same level."""
    text = INDEX_PAGE.read_text()
    assert INDEX_HEADING in text, f"docs/testing.md has no '{INDEX_HEADING}'"
    section = text.split(INDEX_HEADING, 1)[1]
    return re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]


def test_the_index_has_a_row_for_every_test_file() -> None:
    rows = INDEX_ROW.findall(index())
    test_files = {path.relative_to(ROOT).as_posix() for path in TESTS.glob("test_*.py")}
    assert sorted(test_files - set(rows)) == [], "add a row to docs/testing.md's index"
    assert sorted({row for row in rows if rows.count(row) > 1}) == [], "one row per file"


def test_every_file_the_index_names_exists() -> None:
    named = set(NAMED_FILE.findall(index()))
    assert named, "the index names no files: has its format changed?"
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []
