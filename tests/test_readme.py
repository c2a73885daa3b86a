"""The README keeps up with the code: its commands, settings and dependency tables are complete."""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType

from harness.live_server import LiveServer
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def settings_table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts" / "settings_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def section(heading: str) -> str:
    """The text of the README section ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```", 2)[1]
    # The first command installs only what serving needs; ./scripts/test adds the dev group.
    serve = "python3 -m pip install uv && python3 -m uv run --locked --no-dev service serve"
    assert serve in first_block
    assert "./scripts/test" in first_block
    assert os.access(ROOT / "scripts" / "test", os.X_OK)
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_every_setting_has_a_description() -> None:
    undocumented = [name for name, info in Settings.model_fields.items() if not info.description]
    assert not undocumented


def test_the_configuration_table_matches_the_settings() -> None:
    script = settings_table_script()
    assert script.readme_table(README) == script.table(), (
        "README.md's configuration table is out of date: "
        "run `uv run python scripts/settings_table.py --write`"
    )


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_every_dependency_is_explained() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = [_requirement_name(r) for r in project["project"]["dependencies"]]
    for group in project["dependency-groups"].values():
        names += [_requirement_name(r) for r in group if isinstance(r, str)]
    table = section("Dependencies")
    missing = [name for name in names if f"| `{name}` |" not in table]
    assert not missing, f"add a row for each to the README's Dependencies table: {missing}"


def test_the_curl_walkthrough_runs_against_a_live_server(live_server: LiveServer) -> None:
    """Every command of "Using the API" works as written (``curl -f`` fails on an error)."""
    script = section("Using the API").split("```bash\n", 1)[1].split("```", 1)[0]
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={
            **os.environ,
            "BASE": live_server.base_url,
            "API_USER": f"readme_{secrets.token_hex(4)}",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = [line for line in result.stdout.splitlines() if re.fullmatch(r"\d{3}", line)]
    assert statuses == ["204", "401", "204"]
    assert '"error":"invalid_grant"' in result.stdout
