"""Security events: one structured record per event, with who, where and which request, and
never a password or a token in any log record."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from service.security.events import security_event
from tests.helpers import Account, log_in, sign_up
from tests.session_helpers import another_login, bearer, refresh

REQUEST_ID = "req-0123456789"


@pytest.fixture
def events(app: Quart, caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture everything the service logs (its ``service`` logger does not propagate).

    Depends on ``app`` because ``create_app`` replaces the handlers of the ``service`` logger.
    """
    service_log = logging.getLogger("service")
    level = service_log.level
    service_log.setLevel(logging.DEBUG)
    service_log.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        service_log.removeHandler(caplog.handler)
        service_log.setLevel(level)


def recorded(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "service.security" and getattr(record, "event", None) == event
    ]


def only(caplog: pytest.LogCaptureFixture, event: str) -> logging.LogRecord:
    (record,) = recorded(caplog, event)
    return record


async def session_ids(client: Client, account: Account) -> tuple[str, list[str]]:
    """The id of the account's own session and the ids of its others."""
    listed = await client.get("/sessions", headers=bearer(account.access_token))
    sessions = (await listed.get_json())["sessions"]
    current = next(s["id"] for s in sessions if s["current"])
    return current, [s["id"] for s in sessions if not s["current"]]


# --- each event and its fields --------------------------------------------------------------


async def test_login_failed_for_an_unknown_user(
    client: Client, events: pytest.LogCaptureFixture
) -> None:
    await client.post(
        "/login",
        form={"username": "nobody", "password": "whatever-it-is"},
        headers={"X-Request-ID": REQUEST_ID},
    )

    record = only(events, "login_failed")
    assert record.levelno == logging.WARNING
    assert record.reason == "unknown_user"  # type: ignore[attr-defined]
    assert record.request_id == REQUEST_ID  # type: ignore[attr-defined]
    assert record.client_address  # type: ignore[attr-defined]
    assert not hasattr(record, "user_id")
    assert record.getMessage().startswith("login_failed ")
    assert f"request_id={REQUEST_ID}" in record.getMessage()


async def test_login_failed_for_a_wrong_password_names_the_user(
    client: Client, alice: Account, events: pytest.LogCaptureFixture
) -> None:
    await client.post("/login", form={"username": "alice", "password": "not-her-password"})

    record = only(events, "login_failed")
    assert record.reason == "wrong_password"  # type: ignore[attr-defined]
    assert record.user_id == alice.id  # type: ignore[attr-defined]


async def test_refresh_reuse_is_logged_with_the_revoked_session(
    client: Client, alice: Account, events: pytest.LogCaptureFixture
) -> None:
    current, _ = await session_ids(client, alice)
    await refresh(client, alice.refresh_token)

    await refresh(client, alice.refresh_token)

    reuse = only(events, "refresh_reuse_detected")
    assert reuse.levelno == logging.WARNING
    assert (reuse.user_id, reuse.session_id) == (alice.id, current)  # type: ignore[attr-defined]
    revoked = only(events, "session_revoked")
    assert (revoked.how, revoked.session_id) == ("reuse", current)  # type: ignore[attr-defined]


async def test_password_change_logs_the_change_and_each_session_it_ended(
    client: Client, alice: Account, events: pytest.LogCaptureFixture
) -> None:
    await another_login(client, alice)
    await another_login(client, alice)
    current, others = await session_ids(client, alice)

    await client.post(
        "/me/password",
        json={"current_password": alice.password, "new_password": "tidal-copper-orchard-7"},
        headers=bearer(alice.access_token),
    )

    changed = only(events, "password_changed")
    assert (changed.user_id, changed.session_id) == (alice.id, current)  # type: ignore[attr-defined]
    revoked = recorded(events, "session_revoked")
    assert sorted(r.session_id for r in revoked) == sorted(others)  # type: ignore[attr-defined]
    assert {r.how for r in revoked} == {"password_change"}  # type: ignore[attr-defined]
    assert {r.user_id for r in revoked} == {alice.id}  # type: ignore[attr-defined]


async def test_a_wrong_current_password_is_logged(
    client: Client, alice: Account, events: pytest.LogCaptureFixture
) -> None:
    await client.post(
        "/me/password",
        json={"current_password": "a-wrong-guess-1", "new_password": "tidal-copper-orchard-7"},
        headers=bearer(alice.access_token),
    )

    record = only(events, "password_change_failed")
    assert record.levelno == logging.WARNING
    assert record.user_id == alice.id  # type: ignore[attr-defined]
    assert not recorded(events, "password_changed")


@pytest.mark.parametrize(("scope", "ended"), [("local", 1), ("others", 1), ("global", 2)])
async def test_logout_logs_each_session_it_ended(
    client: Client, alice: Account, events: pytest.LogCaptureFixture, scope: str, ended: int
) -> None:
    await another_login(client, alice)

    await client.post("/logout", json={"scope": scope}, headers=bearer(alice.access_token))

    revoked = recorded(events, "session_revoked")
    assert len(revoked) == ended
    assert {(r.how, r.scope) for r in revoked} == {("logout", scope)}  # type: ignore[attr-defined]


async def test_session_deletion_is_logged(
    client: Client, alice: Account, events: pytest.LogCaptureFixture
) -> None:
    await another_login(client, alice)
    _, (other,) = await session_ids(client, alice)

    await client.delete(f"/sessions/{other}", headers=bearer(alice.access_token))

    record = only(events, "session_revoked")
    assert (record.how, record.session_id) == ("delete", other)  # type: ignore[attr-defined]


async def test_account_deletion_is_logged_with_the_sessions_it_ended(
    client: Client, alice: Account, events: pytest.LogCaptureFixture
) -> None:
    await another_login(client, alice)
    current, others = await session_ids(client, alice)

    await client.delete("/me", headers={**bearer(alice.access_token), "X-Request-ID": REQUEST_ID})

    deleted = only(events, "account_deleted")
    assert (deleted.user_id, deleted.session_id) == (alice.id, current)  # type: ignore[attr-defined]
    assert deleted.request_id == REQUEST_ID  # type: ignore[attr-defined]
    revoked = recorded(events, "session_revoked")
    assert sorted(r.session_id for r in revoked) == sorted([current, *others])  # type: ignore[attr-defined]
    assert {r.how for r in revoked} == {"account_deleted"}  # type: ignore[attr-defined]


# --- no secrets -----------------------------------------------------------------------------


async def test_no_password_or_token_appears_in_any_log_record(
    client: Client, events: pytest.LogCaptureFixture
) -> None:
    secrets = ["first-secret-passphrase", "wrong-guess-passphrase", "second-secret-passphrase"]
    alice = await sign_up(client, "alice", secrets[0])
    await client.post("/login", form={"username": "alice", "password": secrets[1]})
    device = (await log_in(client, "alice", secrets[0]))["device_token"]
    for presented in (device, f"{device}x"):
        await client.post(
            "/login",
            form={"username": "alice", "password": secrets[1], "device_token": presented},
        )
    await client.post("/login", form={"username": "nobody", "password": secrets[1]})
    phone = await another_login(client, alice)
    rotated = await (await refresh(client, phone.refresh_token)).get_json()
    await refresh(client, phone.refresh_token)  # reuse
    await client.post("/logout", json={"refresh_token": "forged.token.value"})
    await client.get("/me", headers=bearer("forged.bearer.value"))
    await client.post(
        "/me/password",
        json={"current_password": secrets[1], "new_password": secrets[2]},
        headers=bearer(alice.access_token),
    )
    await client.post(
        "/me/password",
        json={"current_password": secrets[0], "new_password": secrets[2]},
        headers=bearer(alice.access_token),
    )
    await client.post("/logout", json={"scope": "global"}, headers=bearer(alice.access_token))
    again = await another_login(client, Account(alice.id, "alice", secrets[2], "", ""))
    await client.delete("/me", headers=bearer(again.access_token))
    secrets += [
        alice.access_token,
        alice.refresh_token,
        phone.access_token,
        phone.refresh_token,
        rotated["access_token"],
        rotated["refresh_token"],
        again.access_token,
        again.refresh_token,
        "forged.token.value",
        "forged.bearer.value",
        device,
    ]

    assert recorded(events, "account_deleted")
    assert len(events.records) > 10
    for record in events.records:
        text = record.getMessage() + " " + " ".join(map(str, vars(record).values()))
        for secret in secrets:
            assert secret not in text, (record.name, record.getMessage())


# --- the helper -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["password", "new_password", "refresh_token", "access_token", "secret_key"]
)
def test_security_event_refuses_fields_that_would_log_a_secret(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        security_event("oops", **{field: "x"})  # type: ignore[arg-type]


def test_security_event_refuses_fields_that_clash_with_the_log_record() -> None:
    with pytest.raises(ValueError, match="msg"):
        security_event("oops", msg="x")


@contextmanager
def security_records() -> Iterator[list[logging.LogRecord]]:
    """The records of ``service.security`` logged inside the block, outside any app."""
    captured: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = captured.append  # type: ignore[assignment]
    logger = logging.getLogger("service.security")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_security_event_outside_a_request() -> None:
    with security_records() as captured:
        security_event("rate_limited", level=logging.WARNING, reason="login", limit=10)

    (record,) = captured
    assert record.getMessage() == "rate_limited reason=login limit=10"
    assert record.event == "rate_limited"  # type: ignore[attr-defined]
    assert record.limit == "10"  # type: ignore[attr-defined]
    assert "request_id" not in record.getMessage()


def test_security_event_values_cannot_forge_log_lines() -> None:
    with security_records() as captured:
        security_event("rate_limited", reason="x\n2026-01-01 INFO forged=1", limit=None)

    (record,) = captured
    assert record.getMessage() == 'rate_limited reason="x\\n2026-01-01 INFO forged=1"'
    assert "\n" not in record.getMessage()
    assert not hasattr(record, "limit")
