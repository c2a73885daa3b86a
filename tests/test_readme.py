"""The README stays one screen: what the service is, the two commands, the settings a deployer
must set, the code map and the way into docs/, where everything else lives.

Its links, and that its ``service`` commands install the runtime only, are checked with those of
docs/ (``tests/test_docs.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: The README's length limit, in lines: what does not fit belongs in a page of docs/.
MAX_LINES = 200


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```", 2)[1]
    # The first command installs only what serving needs; ./scripts/test adds the dev group.
    serve = "python3 -m pip install uv && python3 -m uv run --locked --no-dev service serve"
    assert serve in first_block
    assert "./scripts/test" in first_block
    assert os.access(ROOT / "scripts" / "test", os.X_OK)
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_fits_in_its_limit() -> None:
    lines = len(README.splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines: move the detail into docs/"


def test_the_readme_leads_to_every_page_of_the_docs() -> None:
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)(?:#[^)]*)?\)", README))
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert pages - linked == set(), "add these pages to the README's Documentation table"
