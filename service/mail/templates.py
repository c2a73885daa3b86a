"""Email templates: a subject, a plain-text body and an HTML body per message kind.

``templates/<name>.subject.txt``, ``<name>.txt`` and ``<name>.html`` ship inside the package
and are rendered with Jinja2. Only the HTML body is autoescaped: a ``<`` in a username is
text there, while the plain-text body shows it as written. A variable the context lacks is an
error (``StrictUndefined``), so a template never goes out with a blank where a link belongs.
The subject becomes one line (a header cannot hold line breaks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

#: Template names are identifiers, never paths.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """What a template made of its context."""

    subject: str
    text: str
    html: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("service.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def render(name: str, context: Mapping[str, str]) -> RenderedMail:
    """Render the template ``name``; ``ValueError`` for a bad name, Jinja2's
    ``TemplateNotFound`` or ``UndefinedError`` for a missing template or variable."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a template name")
    environment = _environment()
    values = dict(context)
    subject = environment.get_template(f"{name}.subject.txt").render(values)
    return RenderedMail(
        subject=" ".join(subject.split()),
        text=environment.get_template(f"{name}.txt").render(values),
        html=environment.get_template(f"{name}.html").render(values),
    )
