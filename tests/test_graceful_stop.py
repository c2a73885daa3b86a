"""A deploy or restart must not cut off requests in flight.

Heroku, like ``kill`` on a process group, sends SIGTERM to every process of the dyno at once:
Hypercorn's master and its workers. The workers must finish what they are serving and the
server must exit cleanly (``service/web/worker.py``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.live_server import STOP_TIMEOUT, start_live_server

pytestmark = pytest.mark.e2e

PASSWORD = "slow-enough-to-be-in-flight"


def test_sigterm_to_every_process_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/service.db"
    # A costly hash keeps the login in flight long enough to be interrupted.
    with start_live_server(database_url, tmp_path, BCRYPT_ROUNDS="14") as server:
        with server.client() as client:
            signup = client.post("/signup", json={"username": "late", "password": PASSWORD})
            assert signup.status_code == 201

        outcome: dict[str, object] = {}
        sent = threading.Event()

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "http11.receive_response_headers.started":
                sent.set()  # the whole request is on the connection

        def log_in() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
                try:
                    outcome["response"] = client.post(
                        "/login",
                        data={"username": "late", "password": PASSWORD},
                        extensions={"trace": trace},
                    )
                except httpx.HTTPError as error:
                    outcome["error"] = error

        request = threading.Thread(target=log_in)
        request.start()
        # Sent, not just started: on a busy machine the thread may take longer to connect.
        assert sent.wait(30), f"the login was never sent: {outcome}"
        time.sleep(0.3)  # the login is hashing now
        os.killpg(server.process.pid, signal.SIGTERM)
        request.join(timeout=30)

        assert "error" not in outcome, f"request cut off: {outcome.get('error')!r}"
        response = outcome["response"]
        assert isinstance(response, httpx.Response)
        assert response.status_code == 200
        assert response.json()["token_type"] == "bearer"
        assert server.process.wait(timeout=STOP_TIMEOUT) == 0
