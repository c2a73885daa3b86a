"""``service mfa-off NAME``: an operator turns off the second factor of a user who lost both
the authenticator app and the recovery codes; the account then logs in with its password."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyotp
import pytest
from click.testing import CliRunner

from service import create_app
from service.cli import main
from service.config import Settings
from service.db.migrate import upgrade
from tests.helpers import make_settings

PASSWORD = "copper-kettle-42"


async def _enrolled_login(database_url: str) -> dict[str, object]:
    """Sign up ``alice``, turn her factor on; what ``/login`` answers afterwards and her token."""
    app = create_app(make_settings(database_url))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await client.post("/signup", json={"username": "alice", "password": PASSWORD})
        login = await client.post("/login", form={"username": "alice", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {(await login.get_json())['access_token']}"}
        started = await client.post(
            "/me/mfa/totp", json={"current_password": PASSWORD}, headers=headers
        )
        secret = (await started.get_json())["secret"]
        confirmed = await client.post(
            "/me/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=headers
        )
        assert confirmed.status_code == 200
        again = await client.post("/login", form={"username": "alice", "password": PASSWORD})
        return {"answer": await again.get_json(), "headers": headers}


async def _login_and_me(database_url: str, headers: dict[str, str]) -> tuple[object, int]:
    app = create_app(make_settings(database_url))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        login = await client.post("/login", form={"username": "alice", "password": PASSWORD})
        me = await client.get("/me", headers=headers)
        return await login.get_json(), me.status_code


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, empty_database_url: str) -> str:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("APP_ENV", "testing")
    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    upgrade(make_settings(empty_database_url))
    return empty_database_url


def test_mfa_off_lets_the_password_log_in_again_and_ends_the_sessions(environment: str) -> None:
    before = asyncio.run(_enrolled_login(environment))
    assert before["answer"]["mfa_required"] is True  # type: ignore[index]

    result = CliRunner().invoke(main, ["mfa-off", "ALICE"])

    assert result.exit_code == 0, result.output
    assert "turned off" in result.output
    answer, me_status = asyncio.run(_login_and_me(environment, before["headers"]))  # type: ignore[arg-type]
    assert "access_token" in answer  # type: ignore[operator]
    assert me_status == 401


def test_mfa_off_for_an_unknown_user_fails_with_the_reason(environment: str) -> None:
    unknown = CliRunner().invoke(main, ["mfa-off", "nobody"])

    assert unknown.exit_code == 1
    assert "No such user" in unknown.output
    assert "Traceback" not in unknown.output
