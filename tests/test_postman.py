"""The Postman collection in ``clients/postman``, run by newman against a real Hypercorn process.

The collection walks the API as a Postman user clicks through it (signup, form login, item CRUD
with ETags, refresh, its repeat within the reuse interval, reuse of an older refresh token,
logout, then administration as an admin made with ``service create-user --admin`` before
newman starts) and its test scripts assert every answer. Here newman runs it against the Procfile's
web command on a fresh database of each backend; the run passes only if newman exits 0 with no
failed assertion and every request got the status the walk expects.

The server is this module's own rather than the shared ``live_server`` fixture: other tests of
that server (fuzzing ``/login``) may fill the per-address failure limit that the collection's
logins count against.

newman comes from npm (``.ci/run`` installs it). Without it the live test is skipped with a
loud reason, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.live_server import ROOT, LiveServer, free_port, start_live_server
from service.accounts.schemas import SignupRequest
from tests.helpers import BACKENDS, empty_database
from tests.smtp_server import SmtpServer

POSTMAN_DIR = ROOT / "clients" / "postman"
COLLECTION = POSTMAN_DIR / "service.postman_collection.json"
ENVIRONMENT = POSTMAN_DIR / "local.postman_environment.json"
SCHEMA_V2_1 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
NEWMAN_TIMEOUT = 120

#: The walk the collection takes, in order: method, path and the status newman must see.
WALK = [
    ("POST", "/signup", 201),
    ("POST", "/signup", 409),
    ("POST", "/login", 200),
    ("POST", "/items", 201),
    ("GET", "/items/{{item_id}}", 200),
    ("PUT", "/items/{{item_id}}", 200),
    ("PUT", "/items/{{item_id}}", 412),
    ("PATCH", "/items/{{item_id}}", 200),
    ("GET", "/items", 200),
    ("DELETE", "/items/{{item_id}}", 204),
    ("GET", "/items/{{item_id}}", 404),
    ("POST", "/refresh", 200),
    ("POST", "/refresh", 200),
    ("POST", "/refresh", 200),
    ("POST", "/refresh", 400),
    ("GET", "/me", 401),
    ("POST", "/login", 200),
    ("GET", "/me", 200),
    ("POST", "/logout", 204),
    ("GET", "/me", 401),
    ("POST", "/signup", 201),
    ("POST", "/login", 200),
    ("GET", "/.well-known/oauth-authorization-server", 200),
    ("POST", "/introspect", 401),
    ("POST", "/revoke", 200),
    ("GET", "/me", 401),
    ("POST", "/revoke", 200),
    ("POST", "/signup", 201),
    ("POST", "/login", 200),
    ("GET", "/me", 200),
    ("POST", "/me/email/resend", 202),
    ("POST", "/verify-email", 400),
    ("POST", "/me/email", 422),
    ("POST", "/me/email", 204),
    ("POST", "/password/forgot", 202),
    ("POST", "/password/forgot", 202),
    ("POST", "/password/reset", 400),
    # 6. Admin
    ("POST", "/signup", 201),
    ("POST", "/login", 200),
    ("POST", "/login", 200),
    ("GET", "/admin/users", 403),
    ("GET", "/admin/users?q={{target_username}}&limit=10", 200),
    ("GET", "/admin/users/{{target_id}}", 200),
    ("GET", "/admin/users/{{target_id}}/sessions", 200),
    ("PATCH", "/admin/users/{{target_id}}", 200),
    ("GET", "/me", 401),
    ("POST", "/login", 400),
    ("PATCH", "/admin/users/{{target_id}}", 200),
    ("POST", "/login", 200),
    ("DELETE", "/admin/users/{{target_id}}/sessions", 204),
    ("GET", "/me", 401),
    ("GET", "/admin/users?q={{admin_username}}", 200),
    ("PATCH", "/admin/users/{{admin_id}}", 409),
    ("DELETE", "/admin/users/{{target_id}}", 204),
    ("GET", "/admin/users/{{target_id}}", 404),
    # 7. Second factor: its own user, codes computed in the folder's pre-request script.
    ("POST", "/signup", 201),
    ("POST", "/login", 200),
    ("POST", "/me/mfa/totp", 200),
    ("POST", "/me/mfa/totp/confirm", 200),
    ("POST", "/login", 200),
    ("POST", "/login/mfa", 200),
    ("POST", "/login", 200),
    ("POST", "/login/mfa", 400),
    ("POST", "/login/mfa", 400),
    ("POST", "/login/mfa", 400),
    ("GET", "/me", 401),
    ("POST", "/login/mfa", 200),
    ("POST", "/me/mfa/totp", 409),
    ("DELETE", "/me/mfa/totp", 204),
    ("POST", "/login", 200),
    # 8. Browsers: cookie mode refused without its CSRF header
    ("POST", "/signup", 201),
    ("POST", "/login", 200),
    ("POST", "/login", 200),
    ("POST", "/refresh", 200),
    ("POST", "/refresh", 400),
    ("POST", "/refresh?cookie=true", 403),
    ("POST", "/logout", 204),
]


def mail_environment(smtp: SmtpServer) -> dict[str, str]:
    """What a production server needs to send email, to ``smtp``."""
    return {
        "SMTP_URL": f"smtp+plain://127.0.0.1:{smtp.port}",
        "MAIL_FROM": "Service <noreply@service.example>",
    }


@contextmanager
def closing_smtp(smtp: SmtpServer) -> Iterator[None]:
    try:
        yield
    finally:
        smtp.stop()


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def requests_in_order(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The collection's requests as Postman and newman run them: folders depth first."""
    found: list[dict[str, Any]] = []
    for item in node.get("item", []):
        found.extend(requests_in_order(item) if "item" in item else [item])
    return found


def scripts(item: dict[str, Any], listen: str) -> str:
    return "\n".join(
        "\n".join(event["script"]["exec"])
        for event in item.get("event", [])
        if event["listen"] == listen
    )


def create_collection_admin(server: LiveServer) -> None:
    """Make the admin the collection's admin folder logs in as, with the command an operator
    uses (``service create-user NAME --admin``), on the server's database."""
    variables = {value["key"]: value["value"] for value in load(COLLECTION)["variable"]}
    server.run_command(
        "create-user",
        variables["admin_username"],
        "--admin",
        "--password-stdin",
        input=variables["admin_password"] + "\n",
    )


def newman_executable() -> str:
    """The ``newman`` command; a loud skip without it (a failure under ``CI=true``)."""
    newman = shutil.which("newman")
    if newman is None:
        message = "NEWMAN NOT INSTALLED: the Postman collection was not run (npm install -g newman)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI requires it (.ci/run installs it)", pytrace=False)
        pytest.skip(message)
    return newman


def test_collection_is_a_v2_1_collection_walking_the_whole_flow() -> None:
    collection = load(COLLECTION)
    assert collection["info"]["schema"] == SCHEMA_V2_1

    walk = [
        (item["request"]["method"], item["request"]["url"]["raw"].removeprefix("{{baseUrl}}"))
        for item in requests_in_order(collection)
    ]

    assert walk == [(method, path) for method, path, _ in WALK]


def test_every_request_has_assertions_and_the_login_is_a_form() -> None:
    collection = load(COLLECTION)
    requests = requests_in_order(collection)

    for item in requests:
        assert "pm.test(" in scripts(item, "test"), f"{item['name']!r} asserts nothing"
        assert item["request"]["url"]["raw"].startswith("{{baseUrl}}/"), item["name"]
    logins = [item for item in requests if item["request"]["url"]["raw"].endswith("/login")]
    for login in logins:
        body = login["request"]["body"]
        assert body["mode"] == "urlencoded", "Postman users log in with form fields"
        fields = {field["key"]: field["value"] for field in body["urlencoded"]}
        if fields.get("grant_type") != "refresh_token":
            assert set(fields) >= {"username", "password"}
    assert "problem+json" in scripts(collection, "test"), "errors are checked on every request"


def test_signup_picks_a_new_username_on_every_run() -> None:
    signup = requests_in_order(load(COLLECTION))[0]

    assert 'collectionVariables.set("username"' in scripts(signup, "prerequest")
    assert "Date.now()" in scripts(signup, "prerequest")


def test_the_example_password_passes_the_signup_rules() -> None:
    """The seed's ``secret123`` is on the common list; the walkthrough's password must not be,
    wherever it is set (collection variables, the environment, a pre-request script)."""
    collection, environment = load(COLLECTION), load(ENVIRONMENT)
    variables = {
        value["key"]: value["value"] for value in [*collection["variable"], *environment["values"]]
    }
    scripts_text = "".join(scripts(item, "prerequest") for item in requests_in_order(collection))
    assert 'set("password"' not in scripts_text
    password = variables["password"]
    SignupRequest(username="postman_1", password=password)  # raises if refused
    with pytest.raises(ValidationError, match="most commonly used"):
        SignupRequest(username="postman_1", password="secret123")


def test_environment_points_at_the_local_development_server() -> None:
    environment = load(ENVIRONMENT)

    values = {value["key"]: value for value in environment["values"]}

    assert values["baseUrl"]["value"] == "http://127.0.0.1:8000"
    assert values["baseUrl"]["enabled"] is True


@pytest.mark.e2e
@pytest.mark.parametrize("backend", BACKENDS)
def test_newman_runs_the_collection_against_the_procfile_server(
    backend: str, tmp_path: Path
) -> None:
    newman = newman_executable()
    report_path = tmp_path / "newman-report.json"
    port = free_port()  # known before the start: the metadata's endpoints are on it
    smtp = SmtpServer()  # the email folder needs a service that sends email
    smtp.start()
    with (
        closing_smtp(smtp),
        empty_database(backend, tmp_path) as database_url,
        start_live_server(
            database_url,
            tmp_path,
            **mail_environment(smtp),  # type: ignore[arg-type]
            PORT=str(port),
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        ) as server,
    ):
        create_collection_admin(server)
        result = subprocess.run(
            [
                newman,
                "run",
                str(COLLECTION),
                "-e",
                str(ENVIRONMENT),
                "--env-var",
                f"baseUrl={server.base_url}",
                "--reporters",
                "cli,json",
                "--reporter-json-export",
                str(report_path),
                "--color",
                "off",
                "--timeout-request",
                "10000",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=NEWMAN_TIMEOUT,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"newman exited with {result.returncode}:\n{output}"
    run = load(report_path)["run"]
    assert run["failures"] == [], output
    stats = run["stats"]
    assert stats["assertions"]["failed"] == 0, output
    assert stats["requests"]["failed"] == 0, output
    executions = run["executions"]
    seen = [
        (execution["request"]["method"], execution["response"]["code"]) for execution in executions
    ]
    assert seen == [(method, status) for method, _, status in WALK], output
    for execution in executions:
        assertions = execution.get("assertions", [])
        assert assertions, f"{execution['item']['name']!r} ran no assertion"
        assert not any(assertion.get("error") for assertion in assertions), output
