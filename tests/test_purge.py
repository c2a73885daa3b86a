"""``service purge``: what goes, what stays, that a second run deletes nothing, batches, and
that it runs beside traffic without anyone noticing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, insert, select

from service.cli.purge import PURGE_STEPS, purge
from service.db.models import AccountToken, IdempotencyKey, LoginSession, OutboxMessage
from service.services import services
from tests.helpers import Account
from tests.session_helpers import assert_session_alive
from tests.test_admin_cli import Run, run  # noqa: F401 (a fixture)
from tests.test_cli import service_command  # noqa: F401 (a fixture)

DAY = timedelta(days=1)
NOW = datetime.now(UTC).replace(microsecond=0)


def deleted(*, sessions: int, idempotency_keys: int) -> dict[str, int]:
    """A purge's report: these counts, and nothing of the kinds these tests do not add."""
    return {
        "sessions": sessions,
        "idempotency_keys": idempotency_keys,
        "account_tokens": 0,
        "outbox": 0,
    }


async def add_session(
    app: Quart, user_id: str, *, expires: timedelta, revoked: timedelta | None = None
) -> uuid.UUID:
    """A session of ``user_id`` ending ``expires`` from now (negative: in the past), revoked
    ``revoked`` from now if given."""
    session_id = uuid.uuid4()
    async with services(app).db.write() as db:
        await db.run(
            insert(LoginSession).values(
                id=session_id,
                user_id=uuid.UUID(user_id),
                refresh_jti="j",
                created_at=NOW - 60 * DAY,
                last_used_at=NOW - 60 * DAY,
                expires_at=NOW + expires,
                revoked_at=None if revoked is None else NOW + revoked,
            )
        )
    return session_id


async def add_key(app: Quart, *, expires: timedelta) -> str:
    key = str(uuid.uuid4())
    async with services(app).db.write() as db:
        await db.run(
            insert(IdempotencyKey).values(
                scope="signup",
                key=key,
                fingerprint="f",
                status=201,
                headers="{}",
                body="{}",
                created_at=NOW - 2 * DAY,
                expires_at=NOW + expires,
            )
        )
    return key


async def session_ids(app: Quart) -> set[uuid.UUID]:
    async with services(app).db.read() as db:
        return {row["id"] for row in await db.all(select(LoginSession.id))}


async def key_names(app: Quart) -> set[str]:
    async with services(app).db.read() as db:
        return {row["key"] for row in await db.all(select(IdempotencyKey.key))}


async def test_purge_deletes_what_ended_before_the_cutoff_and_keeps_the_rest(
    app: Quart, alice: Account
) -> None:
    old_expired = await add_session(app, alice.id, expires=-31 * DAY)
    old_revoked = await add_session(app, alice.id, expires=+60 * DAY, revoked=-31 * DAY)
    recent_expired = await add_session(app, alice.id, expires=-29 * DAY)
    recent_revoked = await add_session(app, alice.id, expires=-40 * DAY + 100 * DAY, revoked=-DAY)
    expired_key = await add_key(app, expires=-timedelta(seconds=1))
    live_key = await add_key(app, expires=+DAY)
    before = await session_ids(app)

    counts = await purge(services(app), now=NOW)

    assert counts == deleted(sessions=2, idempotency_keys=1)
    remaining = await session_ids(app)
    assert remaining == before - {old_expired, old_revoked}
    assert {recent_expired, recent_revoked} <= remaining
    assert await key_names(app) == {live_key}
    assert expired_key not in await key_names(app)


async def test_a_second_run_deletes_nothing(app: Quart, alice: Account) -> None:
    await add_session(app, alice.id, expires=-31 * DAY)
    await add_key(app, expires=-DAY)
    await purge(services(app), now=NOW)

    assert await purge(services(app), now=NOW) == deleted(sessions=0, idempotency_keys=0)


async def test_live_sessions_keep_working_after_a_purge(
    app: Quart, client: Client, alice: Account
) -> None:
    await add_session(app, alice.id, expires=-31 * DAY)

    await purge(services(app))

    await assert_session_alive(client, alice)


async def test_batches_smaller_than_the_backlog_delete_it_all(app: Quart, alice: Account) -> None:
    for _ in range(7):
        await add_session(app, alice.id, expires=-31 * DAY)
        await add_key(app, expires=-DAY)

    counts = await purge(services(app), now=NOW, batch_size=3)

    assert counts == deleted(sessions=7, idempotency_keys=7)


async def test_purge_after_sets_the_cutoff(app: Quart, alice: Account) -> None:
    await add_session(app, alice.id, expires=-2 * DAY)
    shorter = services(app).settings.model_copy(update={"purge_after": 86_400})
    brief = services(app).__class__(**{**vars(services(app)), "settings": shorter})

    assert await purge(services(app), now=NOW) == deleted(sessions=0, idempotency_keys=0)
    assert await purge(brief, now=NOW) == deleted(sessions=1, idempotency_keys=0)


async def test_purge_runs_during_traffic_without_failing_a_request(
    app: Quart, client: Client, alice: Account
) -> None:
    async with services(app).db.write() as db:
        rows = [
            {
                "id": uuid.uuid4(),
                "user_id": uuid.UUID(alice.id),
                "refresh_jti": "j",
                "created_at": NOW - 60 * DAY,
                "last_used_at": NOW - 60 * DAY,
                "expires_at": NOW - 40 * DAY,
            }
            for _ in range(300)
        ]
        await db.run(insert(LoginSession), rows)  # type: ignore[arg-type]

    async def traffic() -> list[int]:
        statuses = []
        account = alice
        for n in range(15):
            created = await client.post("/items", json={"name": f"n{n}"}, headers=account.headers)
            statuses.append(created.status_code)
            refreshed = await client.post("/refresh", json={"refresh_token": account.refresh_token})
            statuses.append(refreshed.status_code)
            account = account.with_tokens(await refreshed.get_json())
            await asyncio.sleep(0)
        return statuses

    counts, statuses = await asyncio.gather(purge(services(app), now=NOW, batch_size=10), traffic())

    assert counts["sessions"] == 300
    assert set(statuses) == {200, 201}
    async with services(app).db.read() as reader:
        assert await reader.scalar(select(func.count()).select_from(LoginSession)) == 1


def test_every_step_has_a_unique_name() -> None:
    names = [step.name for step in PURGE_STEPS]
    assert len(names) == len(set(names)) == 4


async def test_the_command_prints_the_count_of_each_kind(
    app: Quart,
    alice: Account,
    run: Run,  # noqa: F811
) -> None:
    await add_session(app, alice.id, expires=-31 * DAY)
    await add_key(app, expires=-DAY)

    first = await run("purge")
    second = await run("purge", "--batch-size", "1")

    assert first.exit_code == 0, first.output
    rest = ["account_tokens: 0 deleted", "outbox: 0 deleted"]
    assert first.output.splitlines() == [
        "sessions: 1 deleted",
        "idempotency_keys: 1 deleted",
        *rest,
    ]
    assert second.output.splitlines() == [
        "sessions: 0 deleted",
        "idempotency_keys: 0 deleted",
        *rest,
    ]


@pytest.mark.parametrize("size", ["0", "x"])
async def test_the_command_refuses_a_bad_batch_size(run: Run, size: str) -> None:  # noqa: F811
    result = await run("purge", "--batch-size", size)

    assert result.exit_code == 2


async def test_purge_deletes_finished_mail_and_dead_account_tokens(
    app: Quart, alice: Account
) -> None:
    """Mail sent or given up before the cutoff goes, pending mail never does; account tokens
    go once expired."""
    user_id = uuid.UUID(alice.id)
    old, recent = NOW - 31 * DAY, NOW - DAY
    async with services(app).db.write() as db:
        for status, finished in (
            ("sent", old),
            ("failed", old),
            ("sent", recent),
            ("pending", None),
        ):
            await db.run(
                insert(OutboxMessage).values(
                    recipient="a@example.com",
                    template="test_message",
                    subject="s",
                    status=status,
                    available_at=old,
                    finished_at=finished,
                )
            )
        # An expired verification link, and a reset link still valid.
        tokens = (("a" * 64, "verify_email", NOW - DAY), ("b" * 64, "reset_password", NOW + DAY))
        for token_hash, purpose, expires in tokens:
            await db.run(
                insert(AccountToken).values(
                    token_hash=token_hash,
                    user_id=user_id,
                    purpose=purpose,
                    binding="a@example.com",
                    expires_at=expires,
                )
            )

    counts = await purge(services(app), now=NOW)

    assert (counts["outbox"], counts["account_tokens"]) == (2, 1)
    async with services(app).db.read() as db:
        left = await db.all(select(OutboxMessage.status).order_by(OutboxMessage.status))
        kept = await db.all(select(AccountToken.token_hash))
    assert [row["status"] for row in left] == ["pending", "sent"]
    assert [row["token_hash"] for row in kept] == ["b" * 64]
    assert (await purge(services(app), now=NOW))["outbox"] == 0
