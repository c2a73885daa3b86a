"""Operations: health probes, request ids and the one access log line per request."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from quart import Quart, Response
from quart.typing import TestClientProtocol as Client

from service.web.responses import BUFFERED_BODY_BYTES, finish_response
from tests.helpers import Account

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """``caplog`` with ``service.access`` at INFO (the test settings log at WARNING).

    The ``service`` logger does not propagate to the root logger; pytest attaches ``caplog`` to
    such loggers itself when they exist as the test starts (the ``app`` fixture made it).
    """
    caplog.set_level(logging.INFO, logger="service.access")
    return caplog


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "service.access"]


# --- probes ---------------------------------------------------------------------------------


async def test_healthz_says_the_process_is_alive(client: Client) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert (await response.get_json()) == {"status": "ok"}


async def test_readyz_says_the_database_answers(client: Client) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert (await response.get_json()) == {"status": "ready"}


async def test_probes_need_no_token(client: Client) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.get(path, headers={"Authorization": "Bearer garbage"})
        assert response.status_code == 200


# --- request ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_id",
    [
        "abc-123",
        "f3c1b2a0-5e6d-4c7b-8a9f-0e1d2c3b4a59",
        "Root=1-67891233-abcdef012345678912345678",
        "a" * 128,
    ],
)
async def test_a_sane_request_id_is_honoured_and_echoed(client: Client, request_id: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param("a" * 129, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("<script>alert(1)</script>", id="markup"),
        pytest.param("a;b", id="semicolon"),
        pytest.param("tab\there", id="tab"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param("", id="empty"),
    ],
)
async def test_an_unsafe_request_id_is_replaced(client: Client, request_id: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": request_id})

    echoed = response.headers["X-Request-ID"]
    assert echoed != request_id
    assert GENERATED_ID.match(echoed)


async def test_a_request_id_is_generated_when_absent_and_differs_per_request(
    client: Client,
) -> None:
    first = (await client.get("/healthz")).headers["X-Request-ID"]
    second = (await client.get("/healthz")).headers["X-Request-ID"]

    assert GENERATED_ID.match(first)
    assert GENERATED_ID.match(second)
    assert first != second


async def responses_of_every_kind(client: Client, alice: Account, request_id: str) -> list[Any]:
    """One request per kind of outcome: success, each client error, and a preflight-less 404."""
    headers = {"X-Request-ID": request_id}
    auth = alice.headers | headers
    return [
        await client.get("/healthz", headers=headers),
        await client.post("/items", json={"name": "x"}, headers=auth),
        await client.get("/nowhere", headers=headers),
        await client.put("/healthz", headers=headers),
        await client.get("/items", headers=headers),
        await client.get("/items", headers=headers | {"Authorization": "Bearer bad"}),
        await client.post("/items", json={"name": ""}, headers=auth),
        await client.post("/items", data="x", headers=auth | {"Content-Type": "text/plain"}),
        await client.post("/items", data="{", headers=auth | {"Content-Type": "application/json"}),
        await client.post("/items", json={"name": "x" * 70_000}, headers=auth),
        await client.post(
            "/login", form={"username": "alice", "password": "wrong-one"}, headers=headers
        ),
        await client.post("/refresh", json={"refresh_token": "x"}, headers=headers),
    ]


async def test_the_request_id_is_echoed_on_every_response_including_errors(
    client: Client, alice: Account
) -> None:
    responses = await responses_of_every_kind(client, alice, "trace-42")

    statuses = [response.status_code for response in responses]
    assert statuses == [200, 201, 404, 405, 401, 401, 422, 415, 400, 413, 400, 400]
    for response in responses:
        assert response.headers["X-Request-ID"] == "trace-42"


async def test_every_response_says_nosniff(client: Client, alice: Account) -> None:
    for response in await responses_of_every_kind(client, alice, "trace-43"):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_only_large_bodies_keep_the_send_timeout(app: Quart) -> None:
    """A body that fits the socket's buffer is sent without Quart's per-response timeout task.

    A larger one (the docs page's JavaScript) could wait on a slow client, so it gets the send
    timeout.
    """
    async with app.app_context():
        fits = await finish_response(Response(b"x" * BUFFERED_BODY_BYTES))
        larger = await finish_response(Response(b"x" * (BUFFERED_BODY_BYTES + 1)))
    assert fits.timeout is None
    assert larger.timeout == app.config["RESPONSE_TIMEOUT"]


# --- access log -----------------------------------------------------------------------------


async def test_every_request_writes_exactly_one_access_line_with_its_request_id(
    client: Client, alice: Account, access_log: pytest.LogCaptureFixture
) -> None:
    access_log.clear()
    responses = []
    for n in range(5):
        responses.append(await client.get("/healthz", headers={"X-Request-ID": f"req-{n}"}))
    responses.append(await client.get("/nowhere", headers={"X-Request-ID": "req-404"}))
    responses.append(await client.get("/items", headers={"X-Request-ID": "req-401"}))
    responses.append(await client.get("/items"))

    records = access_records(access_log)
    assert len(records) == len(responses)
    logged_ids = [getattr(record, "request_id", None) for record in records]
    assert logged_ids == [response.headers["X-Request-ID"] for response in responses]
    assert [getattr(record, "status", None) for record in records] == [
        response.status_code for response in responses
    ]


async def test_the_access_line_names_method_path_status_and_user(
    client: Client, alice: Account, access_log: pytest.LogCaptureFixture
) -> None:
    access_log.clear()

    await client.get("/items", headers=alice.headers | {"X-Request-ID": "who-is-it"})

    (record,) = access_records(access_log)
    message = record.getMessage()
    assert message.startswith("GET /items 200 ")
    assert f"user={alice.id}" in message
    assert getattr(record, "user_id", None) == alice.id
    assert getattr(record, "request_id", None) == "who-is-it"


async def test_the_access_line_never_shows_a_token_or_the_query_string(
    client: Client, alice: Account, access_log: pytest.LogCaptureFixture
) -> None:
    access_log.clear()

    await client.get("/items", query_string={"access_token": alice.access_token})
    await client.get("/items", headers=alice.headers)
    await client.post("/refresh", json={"refresh_token": alice.refresh_token})

    assert len(access_records(access_log)) == 3
    for record in access_records(access_log):
        text = record.getMessage() + repr(record.__dict__)
        assert alice.access_token not in text
        assert alice.refresh_token not in text
        assert "access_token=" not in text


async def test_no_access_line_below_the_configured_level(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The test settings log at WARNING: the INFO access line is skipped, not formatted."""
    await client.get("/healthz")
    assert access_records(caplog) == []
