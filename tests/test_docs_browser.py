"""The docs page (``/docs``) in a real browser: Debian's Chromium, driven by Playwright.

Against a real Hypercorn process (the Procfile's web command on SQLite), the page must render
every operation of ``/openapi.json``, fetch nothing from anywhere but the service (every other
request is blocked and fails the test: no CDN, works offline), log no console error (a CSP
violation is one), and let a user click **Authorize**, log in through the OAuth2 password flow
(``POST /login``) and then **Try it out** ``GET /items`` with the token it got.

The browser is the system's ``/usr/bin/chromium`` (Playwright cannot download one here); without
it the tests are skipped with a loud reason, except under ``CI=true``, where that is a failure.
A screenshot of the page after the last step is saved under ``artifacts/`` (or the directory
``TEST_ARTIFACTS_DIR`` names), also when a step fails.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError

from harness.live_server import ROOT, LiveServer, start_live_server
from service.config import Settings

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Milliseconds a browser step may take (the page, a click, a request) on a busy machine.
STEP_TIMEOUT_MS = 20_000
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})
expect.set_options(timeout=STEP_TIMEOUT_MS)
USERNAME = "docs-reader"
PASSWORD = "swagger-ui-Tried-it-0ut"


def artifacts_dir() -> Path:
    """Where screenshots go: ``TEST_ARTIFACTS_DIR``, else the git-ignored ``artifacts/``."""
    directory = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def require_chromium() -> None:
    """A loud skip without the browser (a failure under ``CI=true``)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"CHROMIUM NOT INSTALLED: the docs page was not tested in a browser ({CHROMIUM})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI requires it (.ci/run installs it)", pytrace=False)
    pytest.skip(f"{message}; apt-get install chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The Procfile's web command on a fresh SQLite file, with a user signed up over HTTP."""
    require_chromium()
    directory = tmp_path_factory.mktemp("docs-browser")
    with start_live_server(
        f"sqlite:///{directory}/service.db", directory, WEB_CONCURRENCY="1"
    ) as live:
        with live.client() as http:
            response = http.post("/signup", json={"username": USERNAME, "password": PASSWORD})
            assert response.status_code == 201, response.text
        yield live


def spec_operations(server: LiveServer) -> set[tuple[str, str]]:
    """Every (METHOD, path) operation of the service's OpenAPI document."""
    with server.client() as http:
        spec = http.get("/openapi.json").json()
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


@dataclass
class Browsing:
    """The page, and what it did: requests, blocked requests, console errors."""

    page: Page
    origin: str
    requests: list[Request] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def route(self, route: Route) -> None:
        """Let requests to the service through; abort and remember any other."""
        if _origin(route.request.url) == self.origin:
            await route.continue_()
        else:
            self.blocked.append(f"{route.request.method} {route.request.url}")
            await route.abort("blockedbyclient")

    def request(self, request: Request) -> None:
        self.requests.append(request)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def assert_stayed_offline_and_quiet(self) -> None:
        """Only the service was asked for anything, and nothing went wrong in the console."""
        assert self.blocked == [], f"the page reached beyond the service: {self.blocked}"
        elsewhere = [
            request.url for request in self.requests if _origin(request.url) != self.origin
        ]
        assert elsewhere == [], f"requests to other origins: {elsewhere}"
        assert self.errors == [], "\n".join(self.errors)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@asynccontextmanager
async def docs_page(server: LiveServer, tmp_path: Path, screenshot: str) -> AsyncIterator[Browsing]:
    """``/docs`` loaded in a fresh Chromium profile, every request watched and filtered.

    On leaving, even by a failed assertion, a full-page screenshot is saved as ``screenshot``
    in the artifacts directory.
    """
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            service_workers="block",
        )
        try:
            context.set_default_timeout(STEP_TIMEOUT_MS)
            page = context.pages[0] if context.pages else await context.new_page()
            browsing = Browsing(page, _origin(server.base_url))
            await context.route("**/*", browsing.route)
            page.on("request", browsing.request)
            page.on("console", browsing.console)
            page.on("pageerror", lambda error: browsing.errors.append(f"page error: {error}"))
            response = await page.goto(f"{server.base_url}/docs")
            assert response is not None
            assert response.status == 200
            try:
                yield browsing
            except BaseException:
                with suppress(PlaywrightError):  # the test's own failure is the one to report
                    await page.screenshot(path=artifacts_dir() / screenshot, full_page=True)
                raise
            await page.screenshot(path=artifacts_dir() / screenshot, full_page=True)
        finally:
            await context.close()


async def rendered_operations(page: Page) -> set[tuple[str, str]]:
    """The (METHOD, path) of every operation block Swagger UI rendered."""
    blocks: list[list[str]] = await page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(block => [
            block.querySelector('.opblock-summary-method').textContent.trim(),
            block.querySelector('.opblock-summary-path').dataset.path,
        ])""",
    )
    return {(method, path) for method, path in blocks}


async def test_docs_page_renders_every_operation_from_the_service_alone(
    server: LiveServer, tmp_path: Path
) -> None:
    operations = spec_operations(server)

    async with docs_page(server, tmp_path, "docs-page.png") as browsing:
        blocks = browsing.page.locator(".opblock")
        await expect(blocks).to_have_count(len(operations))

        assert await rendered_operations(browsing.page) == operations
        title = Settings.model_fields["api_title"].default
        await expect(browsing.page.locator(".info .title")).to_contain_text(title)
        fetched = {urlsplit(request.url).path for request in browsing.requests}
        assert {"/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"} <= fetched
        browsing.assert_stayed_offline_and_quiet()


async def test_authorize_logs_in_and_try_it_out_lists_items(
    server: LiveServer, tmp_path: Path
) -> None:
    async with docs_page(server, tmp_path, "docs-authorized-try-it-out.png") as browsing:
        page = browsing.page

        # Authorize: the OAuth2 password flow's dialog posts the form to /login.
        await page.locator(".auth-wrapper button.authorize").click()
        dialog = page.locator(".modal-ux")
        await dialog.locator("#oauth_username").fill(USERNAME)
        await dialog.locator("#oauth_password").fill(PASSWORD)
        async with page.expect_response(_is("POST", server, "/login")) as login_info:
            await dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
        login = await login_info.value
        assert login.status == 200, await login.text()
        body = login.request.post_data_json
        assert body is not None
        assert body["grant_type"] == "password"
        assert body["username"] == USERNAME
        headers = await login.request.all_headers()
        assert headers["content-type"] == "application/x-www-form-urlencoded"
        assert headers["authorization"].startswith("Basic "), "empty client credentials, ignored"
        await expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
        await dialog.get_by_role("button", name="Remove authorization").wait_for()
        await dialog.locator(".close-modal").click()
        await expect(dialog).to_have_count(0)

        # Try it out: GET /items with the token the dialog got.
        operation = page.locator(".opblock-get").filter(
            has=page.locator(".opblock-summary-path[data-path='/items']")
        )
        await operation.locator(".opblock-summary-control").click()
        await operation.locator("button.try-out__btn").click()
        async with page.expect_response(_is("GET", server, "/items")) as items_info:
            await operation.locator("button.execute").click()
        items = await items_info.value
        assert items.status == 200, await items.text()
        authorization = (await items.request.all_headers())["authorization"]
        assert authorization == f"Bearer {(await login.json())['access_token']}"
        assert await items.json() == {"items": [], "next_cursor": None}

        # What the page shows under "Server response".
        shown = operation.locator(".live-responses-table tbody")
        await expect(shown.locator(".response-col_status")).to_have_text("200")
        await expect(shown.locator(".response-col_description")).to_contain_text('"next_cursor"')
        browsing.assert_stayed_offline_and_quiet()


def _is(method: str, server: LiveServer, path: str) -> Callable[[Response], bool]:
    """Matches the response to ``method`` on ``path`` of the server, whatever its query."""
    target = (_origin(server.base_url), path)

    def matches(response: Response) -> bool:
        url = response.url
        return response.request.method == method and (_origin(url), urlsplit(url).path) == target

    return matches


async def test_the_refresh_cookie_works_in_chromium_over_http_on_loopback(
    server: LiveServer, tmp_path: Path
) -> None:
    """Cookie mode from a page of the service, in the browser: Chromium keeps the ``Secure``
    ``__Host-refresh_token`` cookie from ``http://127.0.0.1`` (a secure context), scripts
    cannot read it, ``/refresh`` spends it with no body and ``/logout`` clears it."""
    async with docs_page(server, tmp_path, "refresh-cookie.png") as browsing:
        results = await browsing.page.evaluate(
            """async ([username, password]) => {
                const csrf = {"X-Requested-With": "fetch"};
                const login = await fetch("/login?cookie=true", {method: "POST", headers: csrf,
                    body: new URLSearchParams({username, password})});
                const loginBody = await login.json();
                const refresh = await fetch("/refresh", {method: "POST", headers: csrf});
                const refreshBody = await refresh.json();
                const forged = await fetch("/refresh", {method: "POST"});
                const logout = await fetch("/logout", {method: "POST", headers: csrf});
                const after = await fetch("/refresh", {method: "POST", headers: csrf});
                return {login: login.status, loginKeys: Object.keys(loginBody),
                        refresh: refresh.status, refreshKeys: Object.keys(refreshBody),
                        forged: forged.status, logout: logout.status, after: after.status,
                        visible: document.cookie};
            }""",
            [USERNAME, PASSWORD],
        )
        cookies = await browsing.page.context.cookies()

    assert results["login"] == 200
    assert "refresh_token" not in results["loginKeys"]
    assert results["refresh"] == 200, results
    assert "refresh_token" not in results["refreshKeys"]
    assert results["forged"] == 403  # no X-Requested-With
    assert results["logout"] == 204
    assert results["after"] == 400  # the cookie is gone: nothing to refresh with
    assert "refresh_token" not in results["visible"]  # HttpOnly
    assert "__Host-refresh_token" not in {cookie["name"] for cookie in cookies}
