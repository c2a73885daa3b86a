"""The words of the OpenAPI document and the docs page: what a person reads at ``/docs``.

- ``info.title`` and ``info.description`` are the settings ``API_TITLE`` and ``API_DESCRIPTION``,
  and the page's ``<title>`` is the same title.
- Every operation's summary is plain text (Swagger UI shows it as it is, so Markdown would show
  as backticks and asterisks) and a whole sentence: quart-schema takes the docstring's first
  line as the summary, so a first sentence wrapped onto a second line would be cut; here the
  summary must be the docstring's whole first paragraph and end with a full stop.

The document depends on no database: these apps are built as ``service openapi`` builds its
own, on a URL that is never connected to.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from quart import Quart

from service.app import create_app
from service.config import Settings, default_settings
from service.services import services

NO_DATABASE = "postgresql://openapi.invalid/unused"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
#: Markdown a plain-text summary must not contain: code spans, emphasis, links, headings, HTML.
MARKDOWN = re.compile(r"`|\*|(?<![\w])_|_(?![\w])|\[|\]\(|^#|<[A-Za-z/]")

AppBuilder = Callable[..., Awaitable[Quart]]


@pytest.fixture
async def build_app() -> AsyncIterator[AppBuilder]:
    """Apps on default settings plus the given ones; their services are closed afterwards."""
    async with AsyncExitStack() as stack:

        async def build(**values: Any) -> Quart:
            app = create_app(
                default_settings(
                    app_env="testing",
                    database_url=NO_DATABASE,
                    bcrypt_rounds=4,
                    log_level="WARNING",
                    **values,
                )
            )
            stack.push_async_callback(services(app).close)
            return app

        yield build


async def document(app: Quart) -> dict[str, Any]:
    response = await app.test_client().get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = await response.get_json()
    return spec


def openapi_path(rule: str) -> str:
    """werkzeug's ``/items/<id:item_id>`` as OpenAPI writes it, ``/items/{item_id}``."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def first_paragraph(docstring: str) -> str:
    return " ".join(docstring.split("\n\n", 1)[0].split())


async def test_title_and_description_default_to_real_words(build_app: AppBuilder) -> None:
    info = (await document(await build_app()))["info"]
    assert info["title"] == Settings.model_fields["api_title"].default
    assert info["description"] == Settings.model_fields["api_description"].default
    assert info["title"] != "Service API"
    assert not MARKDOWN.search(info["description"]), "the default description is plain text"


async def test_title_and_description_are_the_settings(build_app: AppBuilder) -> None:
    title = "Orders & Co. API"
    description = "The **orders** of Example Ltd.\n\nSee [the guide](https://example.com/guide)."
    app = await build_app(api_title=title, api_description=description)
    info = (await document(app))["info"]
    assert (info["title"], info["description"]) == (title, description)
    page = await (await app.test_client().get("/docs")).get_data(as_text=True)
    assert "<title>Orders &amp; Co. API</title>" in page


@pytest.mark.parametrize("title", ["", "Two\nlines", "x" * 101])
def test_a_title_is_one_line_of_sensible_length(title: str) -> None:
    with pytest.raises(ValueError, match="api_title"):
        default_settings(api_title=title)


async def test_every_summary_is_one_whole_plain_sentence(build_app: AppBuilder) -> None:
    app = await build_app()
    handlers = {
        (method, openapi_path(rule.rule)): app.view_functions[rule.endpoint]
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or ())
    }
    spec = await document(app)
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            where = f"{method.upper()} {path}"
            summary = operation.get("summary", "")
            docstring = inspect.getdoc(handlers[method.upper(), path]) or ""
            assert summary == first_paragraph(docstring), (
                f"{where}: the summary is cut; make the docstring's first line one whole "
                f"sentence, then a blank line: {summary!r}"
            )
            assert not MARKDOWN.search(summary), f"{where}: Markdown in the summary {summary!r}"
            assert summary[:1].isupper(), f"{where}: {summary!r}"
            assert summary.endswith("."), f"{where}: no full stop at the end of {summary!r}"
            description = operation.get("description")
            assert description is None or description == description.strip(), where
            checked += 1
    assert checked > 30, "the document's operations were found"
