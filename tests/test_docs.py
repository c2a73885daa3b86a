"""docs/ keeps up with the code: its links resolve, its generated tables are current, its
dependency table is complete and its curl walkthrough runs.

- Every relative link of README.md and docs/*.md names a file that exists, and an ``#anchor``
  names a heading of the target page, by GitHub's rules for heading ids.
- docs/settings.md's table is what ``scripts/settings_table.py`` makes from ``Settings``.
- docs/dependencies.md has a row for each dependency of ``pyproject.toml``.
- The API reference's "The whole flow with curl" runs against a real server.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import tomllib
from collections import Counter
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

import pytest

from harness.live_server import LiveServer
from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
#: An inline link or image, ``[text](target)`` or ``[text](target "title")``.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def page(name: str) -> str:
    return (ROOT / name).read_text()


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """The id GitHub gives a heading: its text without Markdown, lower case, punctuation
    dropped (letters, digits, ``_``, ``-`` and spaces stay), spaces as ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The ids of a page's headings; a repeated id gets ``-1``, ``-2``... as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return found


def relative_links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text()):
        for target in LINK.findall(CODE_SPAN.sub("", line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto: ...
                targets.append(target)
    return targets


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.is_relative_to(root) or not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: {resolved.name} has no heading #{fragment}")
    return broken


@pytest.mark.parametrize("path", PAGES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_slugs_follow_github() -> None:
    assert github_slug("Retries: `Idempotency-Key`") == "retries-idempotency-key"
    assert github_slug("Second factor (TOTP)") == "second-factor-totp"
    assert github_slug("Coming from the seed's walkthrough") == "coming-from-the-seeds-walkthrough"
    assert github_slug("Revocation (RFC 7009)") == "revocation-rfc-7009"
    assert github_slug("Email, verification and password reset") == (
        "email-verification-and-password-reset"
    )
    assert github_slug("MAIL_* and [the sender](mail.md)") == "mail_-and-the-sender"


def test_the_check_catches_a_broken_link(tmp_path: Path) -> None:
    """The check can fail: a missing file, a missing heading and a heading inside a code block
    (which is no heading) are each caught; a repeated heading's second id is found."""
    (tmp_path / "api.md").write_text("# API\n\n## Endpoints\n")
    bad = tmp_path / "page.md"
    bad.write_text(
        "# Page\n\n## Twice\n\n## Twice\n\n```\n# Not a heading\n```\n\n"
        "[a](missing.md) [b](api.md#no-such-heading) [c](#not-a-heading) [d](#twice-1) "
        "[e](#page) [f](https://example.com/x.md) `[g](nowhere.md)` [h](api.md#endpoints) "
        "[i](../outside.md)\n"
    )
    assert broken_links(bad, root=tmp_path) == [
        "missing.md: no such file",
        "api.md#no-such-heading: api.md has no heading #no-such-heading",
        "#not-a-heading: page.md has no heading #not-a-heading",
        "../outside.md: no such file",
    ]


def test_runtime_commands_do_not_install_the_dev_group() -> None:
    """``uv run`` syncs the dev group by default: a page's ``service`` commands say
    ``--no-dev``. docs/testing.md is the exception: its server runs beside schemathesis, a dev
    tool, in the environment ``./scripts/test`` made."""
    without = [
        f"{path.name}: {command}"
        for path in PAGES
        if path.name != "testing.md"
        for command in re.findall(r"uv run [^`\n#]*?service \w+", path.read_text())
        if "--no-dev" not in command
    ]
    assert without == []


# --- generated and checked tables ------------------------------------------------------------


def settings_table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts" / "settings_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_a_description() -> None:
    undocumented = [name for name, info in Settings.model_fields.items() if not info.description]
    assert not undocumented


def test_the_settings_table_matches_the_settings() -> None:
    script = settings_table_script()
    assert script.page_table(page("docs/settings.md")) == script.table(), (
        "docs/settings.md's table is out of date: "
        "run `uv run --no-dev python scripts/settings_table.py --write`"
    )


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_every_dependency_is_explained() -> None:
    project = tomllib.loads(page("pyproject.toml"))
    names = [_requirement_name(r) for r in project["project"]["dependencies"]]
    for group in project["dependency-groups"].values():
        names += [_requirement_name(r) for r in group if isinstance(r, str)]
    table = page("docs/dependencies.md")
    missing = [name for name in names if f"| `{name}` |" not in table]
    assert not missing, f"add a row for each to docs/dependencies.md: {missing}"


# --- the walkthrough ---------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The text of the section ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def test_the_curl_walkthrough_runs_against_a_live_server(live_server: LiveServer) -> None:
    """Every command of "The whole flow with curl" works as written (``curl -f`` fails on an
    error)."""
    walkthrough = section(page("docs/api.md"), "The whole flow with curl")
    script = walkthrough.split("```bash\n", 1)[1].split("```", 1)[0]
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
