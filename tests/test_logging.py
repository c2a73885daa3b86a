"""Log lines as an operator reads them: JSON in production, readable text elsewhere.

Each test builds the service with the settings of one environment at ``LOG_LEVEL=INFO`` and
reads what it wrote to standard error, the stream ``config/logging.toml`` logs to.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from service import create_app
from service.logs import logging_config
from tests.helpers import delete_all_rows, make_settings, sign_up

ACCESS_FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "user_id",
    "client_address",
}

AppFactory = Callable[..., Any]


@pytest.fixture
def serve(database_url: str) -> AppFactory:
    """``async with serve(app_env) as client``: the service of that environment, logging INFO."""

    @asynccontextmanager
    async def serving(app_env: str, **routes: Any) -> AsyncIterator[Client]:
        app = create_app(make_settings(database_url, app_env=app_env, log_level="INFO"))
        for path, view in routes.items():
            app.add_url_rule(f"/{path}", path, view)
        async with app.test_app() as test_app:
            await delete_all_rows(app.extensions["service"])
            yield test_app.test_client()

    return serving


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as JSON; fails on any line that is not one JSON object."""
    records = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(record, dict) for record in records)
    return records


def access_lines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if record["logger"] == "service.access"]


async def test_production_writes_one_json_line_per_request_with_its_fields(
    serve: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serve("production") as client:
        alice = await sign_up(client, "alice")
        capsys.readouterr()

        await client.get("/healthz", headers={"X-Request-ID": "probe-1"})
        await client.get("/items", headers=alice.headers | {"X-Request-ID": "list-1"})
        await client.get("/nowhere", headers={"X-Request-ID": "lost-1"})

    records = json_lines(capsys.readouterr().err)
    lines = access_lines(records)
    assert [line["request_id"] for line in lines] == ["probe-1", "list-1", "lost-1"]
    probe, listing, lost = lines
    for line in lines:
        assert set(line) >= ACCESS_FIELDS, line
        assert line["level"] == "INFO"
        assert line["method"] == "GET"
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0
        assert line["client_address"]
    assert (probe["path"], probe["status"], probe["user_id"]) == ("/healthz", 200, None)
    assert (listing["path"], listing["status"], listing["user_id"]) == ("/items", 200, alice.id)
    assert (lost["path"], lost["status"]) == ("/nowhere", 404)


async def test_production_lines_never_show_a_token_or_a_password(
    serve: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "zebra-lantern-91"
    async with serve("production") as client:
        alice = await sign_up(client, "alice", password)
        await client.post("/login", form={"username": "alice", "password": "wrong-password-7"})
        await client.post("/refresh", json={"refresh_token": alice.refresh_token})
        await client.post("/refresh", json={"refresh_token": alice.refresh_token})  # reuse
        await client.get("/items", query_string={"access_token": alice.access_token})
        await client.get("/me", headers=alice.headers)

    output = capsys.readouterr().err
    records = json_lines(output)
    assert len(access_lines(records)) == 7  # signup, login, and the five above
    assert {record.get("event") for record in records} >= {
        "login_failed",
        "refresh_reuse_detected",
    }
    for secret in (password, "wrong-password-7", alice.access_token, alice.refresh_token):
        assert secret not in output


async def test_security_events_are_json_lines_with_their_fields(
    serve: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serve("production") as client:
        await client.post(
            "/login",
            form={"username": "nobody", "password": "whatever-123"},
            headers={"X-Request-ID": "guess-1"},
        )

    (event,) = [record for record in json_lines(capsys.readouterr().err) if "event" in record]
    assert event["logger"] == "service.security"
    assert event["level"] == "WARNING"
    assert event["event"] == "login_failed"
    assert event["reason"] == "unknown_user"
    assert event["request_id"] == "guess-1"


async def test_an_unexpected_error_is_one_json_line_with_its_traceback(
    serve: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async def boom() -> str:
        raise RuntimeError("the disk is on fire")

    async with serve("production", boom=boom) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "fire-1"})
    assert response.status_code == 500

    records = json_lines(capsys.readouterr().err)
    (error,) = [record for record in records if record["level"] == "ERROR"]
    assert error["request_id"] == "fire-1"
    assert "Traceback (most recent call last)" in error["exc_info"]
    assert "the disk is on fire" in error["exc_info"]
    assert [line["status"] for line in access_lines(records)] == [500]


@pytest.mark.parametrize("app_env", ["development", "testing"])
async def test_other_environments_write_readable_lines(
    serve: AppFactory, capsys: pytest.CaptureFixture[str], app_env: str
) -> None:
    async with serve(app_env) as client:
        alice = await sign_up(client, "alice")
        capsys.readouterr()
        await client.get("/items", headers=alice.headers | {"X-Request-ID": "read-me"})

    (line,) = capsys.readouterr().err.splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    _date, clock, level, logger, request_id, text = line.split(" ", 5)
    assert clock.count(":") == 2
    assert (level, logger, request_id) == ("INFO", "service.access", "[read-me]")
    assert text.startswith("GET /items 200 ")
    assert text.endswith(f"ms user={alice.id} client=<local>")


async def test_a_line_break_in_the_path_cannot_forge_a_readable_line(
    serve: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serve("development") as client:
        await client.get("/items%0A2026-01-01 INFO service.access [x] GET /admin 200")

    (line,) = capsys.readouterr().err.splitlines()
    assert '"/items\\n2026-01-01' in line


def test_the_format_follows_app_env_and_the_level_log_level(database_url: str) -> None:
    production = logging_config(make_settings(database_url, app_env="production"))
    development = logging_config(make_settings(database_url, log_level="DEBUG"))

    assert production["handlers"]["stderr"]["formatter"] == "json"
    assert development["handlers"]["stderr"]["formatter"] == "text"
    assert development["loggers"]["service"]["level"] == "DEBUG"
