"""The interactive docs page: Swagger UI with its assets served by the service itself.

``/docs`` is Swagger UI whose JavaScript and CSS come from the installed ``swagger-ui-bundle-v2``
package through this blueprint, never from a CDN, so "Authorize" and "Try it out" work offline
and under a strict Content-Security-Policy. The page's title is ``API_TITLE``, as in the document.
"""

from __future__ import annotations

from html import escape

from quart import Blueprint, Response, send_from_directory
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound

from service.services import services

bp = Blueprint("docs", __name__, static_folder="static", static_url_path="/docs/static")

#: The Swagger UI files the page needs; nothing else of the package is served.
SWAGGER_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/static/docs.js"></script>
</body>
</html>
"""

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@bp.get("/docs")
@hide
async def docs_page() -> Response:
    page = DOCS_PAGE.format(title=escape(services().settings.api_title))
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": DOCS_CSP})


@bp.get("/docs/assets/<name>")
@hide
async def docs_asset(name: str) -> Response:
    if name not in SWAGGER_ASSETS:
        raise NotFound()
    response = await send_from_directory(swagger_ui_path, name)
    response.cache_control.public = True
    response.cache_control.max_age = 86_400
    return response
