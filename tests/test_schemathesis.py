"""Schemathesis against a live server: every operation of ``/openapi.json``, every check.

The server is the Procfile's (``harness/live_server.py``: release, then Hypercorn with two
workers and production settings) on a fresh database of each backend. The schemathesis CLI
runs as a user would run it (docs/testing.md), with ``tests/schemathesis.toml``: all
its checks, the documented exceptions there, and the auth hooks of
``tests/schemathesis_hooks.py``, which sign up real users and log them in, so every request
that needs one carries a live bearer token, including those that end sessions; the admin API
gets the token of an admin made with ``service create-user --admin`` before the run.

The server's brute-force limits are lifted for the run: schemathesis sends hundreds of
signups, logins and wrong passwords a minute from one address, and the limits would answer
429 (documented, and tested in ``test_rate_limits.py``) to the hooks' own logins too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.live_server import ROOT, LiveServer, free_port, start_live_server
from tests.schemathesis_hooks import INTROSPECTION_CLIENT
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.e2e

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = ROOT / "tests" / "schemathesis.toml"
#: Test cases per operation and phase: a few minutes at most for both backends.
MAX_EXAMPLES = 25
SEED = 20261125
RUN_TIMEOUT = 900
SERVER_SETTINGS: dict[str, str] = {
    "INTROSPECTION_CLIENTS": INTROSPECTION_CLIENT,
    "AUTH_REQUESTS_PER_MINUTE": "0",
    "LOGIN_FAILURES_PER_USERNAME": "100000",
    "LOGIN_FAILURES_PER_ADDRESS": "100000",
    "EMAIL_REQUESTS_PER_HOUR": "10000",
    # A service that sends email (to the test's SMTP server), so the email routes exist.
    "PUBLIC_BASE_URL": "https://service.example",
    "MAIL_FROM": "Service <noreply@service.example>",
}
#: The success of each operation whose happy path needs what the hooks fill in.
HAPPY_PATHS = {
    ("POST", "/refresh", 200),
    ("POST", "/logout", 204),
    ("POST", "/me/password", 204),
    ("POST", "/me/mfa/totp", 200),
    ("GET", "/me/mfa/totp", 200),
    ("DELETE", "/me", 204),
    ("DELETE", "/sessions/{id}", 204),
    ("POST", "/items", 201),
    ("PUT", "/items/{id}", 200),
    ("PATCH", "/items/{id}", 200),
    ("DELETE", "/items/{id}", 204),
    ("POST", "/revoke", 200),
    ("POST", "/introspect", 200),
    ("GET", "/.well-known/oauth-authorization-server", 200),
    ("POST", "/me/email", 204),
    ("POST", "/password/forgot", 202),
    ("GET", "/admin/users", 200),
    ("GET", "/admin/users/{id}", 200),
    ("PATCH", "/admin/users/{id}", 200),
    ("DELETE", "/admin/users/{id}", 204),
    ("GET", "/admin/users/{id}/sessions", 200),
    ("DELETE", "/admin/users/{id}/sessions", 204),
}
UUID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?=/|$)")
#: The admin the hooks use for the admin API, made with ``service create-user --admin``.
ADMIN_USERNAME = "schemathesis-admin"
ADMIN_PASSWORD = "schemathesis-admin-31415"


def operation_count(server: LiveServer) -> int:
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    return sum(len(operations) for operations in document["paths"].values())


def run_schemathesis(base_url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    admin = {
        "SCHEMATHESIS_ADMIN_USERNAME": ADMIN_USERNAME,
        "SCHEMATHESIS_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    """``schemathesis run`` as by hand; in ``workdir`` so its files stay out of the repo."""
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base_url}/openapi.json",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "2",
            "--no-color",
        ],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT), **admin},  # the hooks module is tests.*
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def answered(server_output: str) -> set[tuple[str, str, int]]:
    """(method, path with ids as ``{id}``, status) of every access line (JSON in production)."""
    seen = set()
    # Not ``splitlines``: it also splits at U+0085 and U+2028, which a logged path may hold.
    for line in server_output.split("\n"):
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("logger") == "service.access":
            path = UUID.sub("/{id}", record["path"])
            seen.add((record["method"], path, record["status"]))
    return seen


def test_schemathesis_finds_nothing_on_a_live_server(
    empty_database_url: str, tmp_path: Path
) -> None:
    port = free_port()  # known before the start: the metadata's endpoints are on it
    settings = {**SERVER_SETTINGS, "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    # The keys are environment variables, never ``check_output``.
    smtp = SmtpServer()
    smtp.start()
    settings["SMTP_URL"] = f"smtp+plain://127.0.0.1:{smtp.port}"
    try:
        with start_live_server(empty_database_url, tmp_path, **settings) as server:  # type: ignore[arg-type]
            server.run_command(
                "create-user", ADMIN_USERNAME, "--admin", "--password-stdin", input=ADMIN_PASSWORD
            )
            operations = operation_count(server)
            result = run_schemathesis(server.base_url, tmp_path)
            server_output = server.output()
    finally:
        smtp.stop()
    report = result.stdout + result.stderr

    assert result.returncode == 0, report
    assert f"Selected: {operations}/{operations}" in report, report
    assert f"Tested: {operations}" in report, report
    missing = HAPPY_PATHS - answered(server_output)
    assert not missing, f"never reached: {sorted(missing)}\n{report}"
