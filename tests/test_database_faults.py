"""Fault tests: the service under load while its PostgreSQL is frozen, and while it is killed.

Each test starts a PostgreSQL of its own (``harness.postgres``: initdb into a temporary
directory, a free port), serves it with the Procfile's commands (two workers) and drives a
bounded asyncio load of creates, reads and refreshes. Then it

- freezes the server (SIGSTOP of all its processes) for a few seconds: no 500, every request
  started during the freeze answered within ``DB_STATEMENT_TIMEOUT`` plus one second however
  many database calls it makes (a create: the session check, then a write's checkout, ping,
  INSERT and COMMIT; a refresh: a write of several statements), 503s with ``Retry-After``,
  ``/readyz`` answering 503 within one second, and everything working again by itself after
  SIGCONT;
- kills the postmaster with SIGKILL (and restarts it) several times under write load: no 500,
  and every create that was acknowledged (201) is still in the table afterwards.

The idempotent retry of a create that answered 503 belongs to ``Idempotency-Key``; here a 503
is only counted. Run just these with ``pytest -m faults``; they also run in the normal suite.
Without PostgreSQL's binaries they skip loudly, except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from harness.live_server import LiveServer, start_live_server
from harness.postgres import PrivatePostgres, postgres_binaries, private_postgres

#: ``serial``: its bounds leave room for its own load on two cores, not another test's too.
pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.serial]

#: The server's DB_STATEMENT_TIMEOUT, seconds: short, so that the test stays short.
STATEMENT_TIMEOUT = 2.0
#: DB_CONNECT_TIMEOUT and DB_POOL_TIMEOUT at their defaults, longer than the statement
#: timeout: a request's one deadline must cut these waits short too.
CONNECT_TIMEOUT = POOL_TIMEOUT = 5.0
#: The longest a request started during a freeze may take: its database time, and one second
#: for its own work (the statement timeout is one deadline for all of a request's calls).
REQUEST_BOUND = STATEMENT_TIMEOUT + 1.0
#: The longest ``/readyz`` may take while the database does not answer.
READY_BOUND = 1.0
#: Room, for requests that began before the freeze or end after the thaw, for a loaded
#: two-core machine (the load, two workers and PostgreSQL share it).
MARGIN = 2.0
#: How long after the thaw (or a restart) a create must succeed again.
RECOVERY = 15.0
#: How long the database stays frozen: long enough for requests to start and end within it.
FREEZE = 5.0
CLIENTS = 8
USERS = 4


@pytest.fixture(scope="module")
def binaries() -> Path:
    found = postgres_binaries()
    if found is None:
        message = "PostgreSQL's binaries (initdb, postgres) are not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI requires the fault tests", pytrace=False)
        pytest.skip(f"FAULT TESTS SKIPPED: {message}")
    return found


@pytest.fixture
def database(binaries: Path) -> Iterator[PrivatePostgres]:
    with private_postgres(binaries) as server:
        yield server


@pytest.fixture
def service(database: PrivatePostgres, tmp_path: Path) -> Iterator[LiveServer]:
    with start_live_server(
        database.url,
        tmp_path,
        DB_STATEMENT_TIMEOUT=str(STATEMENT_TIMEOUT),
        DB_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT),
        DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        AUTH_REQUESTS_PER_MINUTE="0",  # the clients refresh in a loop from one address
        LOG_LEVEL="WARNING",
    ) as server:
        yield server


@dataclass
class Outcome:
    """One request as the client saw it."""

    kind: str
    status: int  # 0: no response (a transport error or the client's own timeout)
    started: float
    elapsed: float
    retry_after: str | None = None
    item_id: str | None = None
    #: A refresh's new access and refresh tokens.
    tokens: tuple[str, str] | None = None


@dataclass
class Session:
    """One client's login: its current access and refresh tokens."""

    access_token: str
    refresh_token: str


@dataclass
class Load:
    """Clients creating, reading and (with ``reads``) refreshing until told to stop: each in
    turn a create, a read of its last item and a refresh of its own session. Every outcome is
    recorded; a refresh that did not answer 200 is tried again later with the same token
    (within ``REFRESH_REUSE_INTERVAL`` that gets the same successor)."""

    base_url: str
    sessions: list[Session]
    reads: bool = True
    outcomes: list[Outcome] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=CLIENTS)
        timeout = httpx.Timeout(REQUEST_BOUND * 4)
        async with httpx.AsyncClient(
            base_url=self.base_url, limits=limits, timeout=timeout
        ) as http:
            await asyncio.gather(*(self._client(http, number) for number in range(CLIENTS)))

    async def _client(self, http: httpx.AsyncClient, number: int) -> None:
        session = self.sessions[number]
        mine: list[str] = []
        sequence = 0
        while not self.stopping.is_set():
            sequence += 1
            headers = {"Authorization": f"Bearer {session.access_token}"}
            if self.reads and mine and sequence % 3 == 1:
                await self._request(http, "read", "GET", f"/items/{mine[-1]}", headers=headers)
                continue
            if self.reads and sequence % 3 == 2:
                body = {"refresh_token": session.refresh_token}
                outcome = await self._request(http, "refresh", "POST", "/refresh", body=body)
                if outcome.tokens is not None:
                    session.access_token, session.refresh_token = outcome.tokens
                continue
            body = {"name": f"client {number} item {sequence}"}
            outcome = await self._request(
                http, "create", "POST", "/items", headers=headers, body=body
            )
            if outcome.item_id is not None:
                mine.append(outcome.item_id)

    async def _request(
        self,
        http: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, str] | None = None,
    ) -> Outcome:
        started = time.monotonic()
        try:
            response = await http.request(method, path, headers=headers, json=body)
        except httpx.HTTPError:
            outcome = Outcome(kind, 0, started, time.monotonic() - started)
        else:
            answer = response.json() if response.status_code in {200, 201} else {}
            refreshed = kind == "refresh" and response.status_code == 200
            outcome = Outcome(
                kind,
                response.status_code,
                started,
                time.monotonic() - started,
                response.headers.get("Retry-After"),
                answer.get("id") if response.status_code == 201 else None,
                (answer["access_token"], answer["refresh_token"]) if refreshed else None,
            )
        self.outcomes.append(outcome)
        return outcome

    def statuses(self, since: float = 0.0) -> Counter[int]:
        return Counter(outcome.status for outcome in self.outcomes if outcome.started >= since)


def sign_up_users(server: LiveServer) -> list[Session]:
    """``USERS`` accounts and a login session of its own for each of the ``CLIENTS``."""
    accounts = [
        {"username": f"user{number}", "password": "quiet-harbour-lantern"}
        for number in range(USERS)
    ]
    sessions = []
    with server.client() as http:
        for account in accounts:
            assert http.post("/signup", json=account).status_code == 201
        for number in range(CLIENTS):
            response = http.post("/login", data=accounts[number % USERS])
            assert response.status_code == 200, response.text
            answer = response.json()
            sessions.append(Session(answer["access_token"], answer["refresh_token"]))
    return sessions


async def timed_get(base_url: str, path: str) -> tuple[int, float]:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_BOUND * 4) as http:
        response = await http.get(path)
    assert response.status_code != 503 or response.headers.get("Retry-After")
    return response.status_code, time.monotonic() - started


async def wait_for_recovery(load: Load, since: float, deadline: float) -> float:
    """When the first create started after ``since`` succeeded; fails after ``deadline`` s."""
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        for outcome in load.outcomes:
            if outcome.started >= since and outcome.status == 201:
                return outcome.started
        await asyncio.sleep(0.05)
    raise AssertionError(f"no create succeeded within {deadline}s: {load.statuses(since)}")


def assert_no_server_errors(load: Load) -> None:
    statuses = load.statuses()
    assert not [status for status in statuses if status >= 500 and status != 503], statuses
    assert statuses[0] == 0, f"requests without a response: {statuses}"
    for outcome in load.outcomes:
        if outcome.status == 503:
            assert outcome.retry_after is not None, outcome
            assert int(outcome.retry_after) > 0, outcome


def test_a_frozen_database_gives_prompt_503s_and_the_service_recovers(
    service: LiveServer, database: PrivatePostgres
) -> None:
    load = Load(service.base_url, sign_up_users(service))

    async def scenario() -> tuple[float, float, float, list[tuple[int, float]]]:
        runner = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        frozen_at = time.monotonic()
        database.freeze()
        probes = []
        try:
            while time.monotonic() < frozen_at + FREEZE:
                probes.append(await timed_get(service.base_url, "/readyz"))
                await asyncio.sleep(0.5)
        finally:
            thawed_at = time.monotonic()
            database.thaw()
        recovered_at = await wait_for_recovery(load, thawed_at, deadline=RECOVERY)
        await asyncio.sleep(2.0)
        load.stopping.set()
        await runner
        return frozen_at, thawed_at, recovered_at, probes

    frozen_at, thawed_at, recovered_at, probes = asyncio.run(scenario())
    started_frozen = [o for o in load.outcomes if frozen_at <= o.started < thawed_at]
    worst = {
        kind: max((o.elapsed for o in started_frozen if o.kind == kind), default=None)
        for kind in ("create", "read", "refresh")
    }
    print(
        f"frozen {thawed_at - frozen_at:.1f}s: {load.statuses()}; slowest started while "
        f"frozen {worst}; /readyz {probes}"
    )

    assert_no_server_errors(load)
    # One deadline for all of a request's database calls: a create (session check, checkout,
    # ping, INSERT, COMMIT) and a refresh (a write of several statements) alike.
    assert {"create", "refresh"} <= {o.kind for o in started_frozen}, worst
    slowest = max(started_frozen, key=lambda outcome: outcome.elapsed)
    assert slowest.elapsed <= REQUEST_BOUND, slowest
    slowest = max(load.outcomes, key=lambda outcome: outcome.elapsed)
    assert slowest.elapsed <= REQUEST_BOUND + MARGIN, slowest
    # Whatever started and ended while the database was frozen can only have been a 503.
    during = [o for o in started_frozen if o.started + o.elapsed < thawed_at]
    assert len(during) >= CLIENTS, "the load ran while the database was frozen"
    assert {o.status for o in during} == {503}, Counter(o.status for o in during)
    assert len(probes) >= 4, probes
    for status, elapsed in probes:
        assert status == 503
        assert elapsed <= READY_BOUND, probes
    # Back by itself: once a create succeeded again, every later request did too.
    after = [o for o in load.outcomes if o.started > recovered_at + 0.5]
    assert after, "the load ran after the recovery"
    assert {o.status for o in after} <= {200, 201}, Counter(o.status for o in after)
    assert httpx.get(f"{service.base_url}/readyz").status_code == 200


async def stored_item_ids(url: str) -> set[str]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        rows = await connection.fetch("SELECT id FROM items")
    finally:
        await connection.close()
    return {str(uuid.UUID(str(row["id"]))) for row in rows}


def test_killing_the_database_under_write_load_loses_no_acknowledged_create(
    service: LiveServer, database: PrivatePostgres
) -> None:
    load = Load(service.base_url, sign_up_users(service), reads=False)
    crashes = 3

    async def scenario() -> float:
        runner = asyncio.create_task(load.run())
        await asyncio.sleep(0.7)
        for _ in range(crashes):
            await asyncio.to_thread(database.crash)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(database.start)
            restarted_at = time.monotonic()
            await wait_for_recovery(load, restarted_at, deadline=RECOVERY)
            await asyncio.sleep(0.5)
        load.stopping.set()
        await runner
        return restarted_at

    last_restart = asyncio.run(scenario())
    print(f"{crashes} crashes: {load.statuses()}")

    assert_no_server_errors(load)
    statuses = load.statuses()
    assert statuses[503] > 0, f"no create met a crash: {statuses}"
    acknowledged = {o.item_id for o in load.outcomes if o.item_id is not None}
    assert len(acknowledged) == statuses[201]
    missing = acknowledged - asyncio.run(stored_item_ids(database.url))
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged creates lost"
    assert load.statuses(since=last_restart)[201] > 0
