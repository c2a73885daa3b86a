"""The HTTP edge over real sockets against the Procfile's Hypercorn (``service/web/http_edge.py``).

Raw bytes, so each test sends exactly what an attacker or a careless client would: a body the
server refuses before reading it, Content-Length with Transfer-Encoding, an oversized header
block in one write, HTTP/2 without TLS (prior knowledge and ``Upgrade: h2c``), a ``//`` path
with a foreign ``Host``. Then what the client sees: every answer whole, the connection kept or
closed as the answer says, never cut.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import pytest

from harness.live_server import ROOT, LiveServer, start_live_server
from service.web.http_edge import CHECKED_AGAINST, MAX_HEADER_BYTES

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


class Connection:
    """One TCP connection to the server, speaking HTTP/1.1 by hand."""

    def __init__(self, server: LiveServer) -> None:
        address = urlsplit(server.base_url)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=TIMEOUT)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> Answer:
        """The next whole response (a length-delimited or empty body), or an AssertionError."""
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed mid-response: {self.buffer!r}"
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), "connection closed mid-body"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed_cleanly(self) -> bool:
        """Whether the server ends the connection with a FIN (not a reset) and nothing more."""
        try:
            return not self._fill() and not self.buffer
        except ConnectionResetError:
            return False

    def close(self) -> None:
        self.sock.close()


@contextmanager
def connection(server: LiveServer) -> Iterator[Connection]:
    conn = Connection(server)
    try:
        yield conn
    finally:
        conn.close()


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: service.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


HEALTH = request("GET", "/healthz")


def test_the_edge_was_checked_against_the_installed_hypercorn_and_h11() -> None:
    """The edge mends Hypercorn's and h11's behaviour: a new version needs a new look."""
    installed = {name: importlib.metadata.version(name) for name in CHECKED_AGAINST}
    assert installed == CHECKED_AGAINST, (
        "Hypercorn or h11 changed: check each rule of service/web/http_edge.py against the new "
        "version (some may now be configurable), then update CHECKED_AGAINST."
    )


def test_the_header_limit_is_hypercorns_own() -> None:
    config = tomllib.loads((ROOT / "config" / "hypercorn.toml").read_text())
    assert config["h11_max_incomplete_size"] == MAX_HEADER_BYTES
    assert config["include_server_header"] is False


def test_a_body_refused_before_it_was_read_leaves_the_connection_usable(
    live_server: LiveServer,
) -> None:
    body = json.dumps({"name": "x" * 900}).encode()
    head = request(
        "POST", "/items", "Content-Type: application/json", f"Content-Length: {len(body)}"
    )
    with connection(live_server) as conn:
        for _ in range(3):
            # The body comes a moment after the header: the 401 is decided before it arrives.
            conn.send(head)
            time.sleep(0.05)
            conn.send(body + HEALTH)
            refused = conn.answer()
            assert refused.status == 401
            assert json.loads(refused.body)["status"] == 401
            assert conn.answer().status == 200
        # A 415, decided on the header too.
        conn.send(request("POST", "/signup", "Content-Type: text/plain", "Content-Length: 5"))
        time.sleep(0.05)
        conn.send(b"hello" + HEALTH)
        assert conn.answer().status == 415
        assert conn.answer().status == 200


def test_a_body_too_large_to_read_is_answered_with_connection_close(
    live_server: LiveServer,
) -> None:
    length = 10 * 1024 * 1024
    with connection(live_server) as conn:
        conn.send(
            request(
                "POST", "/signup", "Content-Type: application/json", f"Content-Length: {length}"
            )
        )
        conn.send(b"[" * 1000)
        answer = conn.answer()
        assert answer.status == 413
        assert answer.closes
        assert conn.closed_cleanly()
    with connection(live_server) as conn:  # chunked: no length to read up to
        conn.send(
            request(
                "POST", "/items", "Content-Type: application/json", "Transfer-Encoding: chunked"
            )
        )
        conn.send(b"5\r\n[[[[[\r\n")
        answer = conn.answer()
        assert answer.status == 401
        assert answer.closes


def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed(
    live_server: LiveServer,
) -> None:
    smuggled = request("GET", "/openapi.json")
    chunk = b"0\r\n\r\n"
    with connection(live_server) as conn:
        conn.send(
            request(
                "POST",
                "/signup",
                "Content-Type: application/json",
                f"Content-Length: {len(chunk) + len(smuggled)}",
                "Transfer-Encoding: chunked",
                body=chunk + smuggled,
            )
        )
        answer = conn.answer()
        assert answer.status == 400
        assert answer.closes
        assert json.loads(answer.body)["detail"] == "Content-Length and Transfer-Encoding together."
        assert conn.closed_cleanly()  # the "smuggled" request was never answered


@pytest.mark.parametrize("size", [MAX_HEADER_BYTES + 100, 60 * 1024])
def test_a_header_block_over_the_limit_is_431_even_in_one_write(
    live_server: LiveServer, size: int
) -> None:
    with connection(live_server) as conn:
        conn.send(request("GET", "/healthz", f"X-Padding: {'a' * size}"))
        answer = conn.answer()
        assert answer.status in {400, 431}  # 400: h11's own limit, when it came in pieces
        assert answer.closes


def test_a_header_block_within_the_limit_is_served(live_server: LiveServer) -> None:
    with connection(live_server) as conn:
        conn.send(request("GET", "/healthz", f"X-Padding: {'a' * (MAX_HEADER_BYTES - 1024)}"))
        assert conn.answer().status == 200


def _h2_status(conn: Connection, h2conn: h2.connection.H2Connection) -> int:
    while True:
        data = conn.sock.recv(65536)
        assert data, "connection closed before an HTTP/2 answer"
        for event in h2conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                return int(dict(event.headers)[b":status"])
        conn.send(h2conn.data_to_send())


H2_REQUEST = [
    (":method", "GET"),
    (":path", "/healthz"),
    (":scheme", "http"),
    (":authority", "service.test"),
]


def test_cleartext_http2_with_prior_knowledge_is_refused(live_server: LiveServer) -> None:
    h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    h2conn.initiate_connection()
    h2conn.send_headers(1, H2_REQUEST, end_stream=True)
    with connection(live_server) as conn:
        conn.send(h2conn.data_to_send())
        assert _h2_status(conn, h2conn) == 505


def _upgrade_request(h2conn: h2.connection.H2Connection) -> bytes:
    upgrade_settings = h2conn.initiate_upgrade_connection()
    assert upgrade_settings is not None
    return request(
        "GET",
        "/healthz",
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        f"HTTP2-Settings: {upgrade_settings.decode()}",
    )


def test_cleartext_http2_by_upgrade_is_not_switched_to(live_server: LiveServer) -> None:
    h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with connection(live_server) as conn:
        conn.send(_upgrade_request(h2conn))
        answer = conn.answer()
        # No 101: the upgrade is ignored (RFC 9110 section 7.8) and the request is served as
        # HTTP/1.1, on a connection that stays HTTP/1.1 for the next request.
        assert answer.status == 200
        assert "upgrade" not in answer.headers
        conn.send(HEALTH)
        assert conn.answer().status == 200


def test_cleartext_http2_by_upgrade_is_served_when_configured(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/service.db"
    with start_live_server(database_url, tmp_path, HTTP2_CLEARTEXT="true") as server:
        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        with connection(server) as conn:
            conn.send(_upgrade_request(h2conn))
            switched = conn.answer()
            assert switched.status == 101
            assert switched.headers["upgrade"] == "h2c"
            conn.send(h2conn.data_to_send())
            conn.buffer, leftover = b"", conn.buffer
            events = h2conn.receive_data(leftover) if leftover else []
            statuses = [
                int(dict(event.headers)[b":status"])
                for event in events
                if isinstance(event, h2.events.ResponseReceived)
            ]
            assert (statuses[0] if statuses else _h2_status(conn, h2conn)) == 200


def test_redirects_never_take_their_host_from_the_request(live_server: LiveServer) -> None:
    with connection(live_server) as conn:
        for path in ("//items", "//evil.example/items", "/items//", "///healthz"):
            conn.send(f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
            answer = conn.answer()
            location = answer.headers.get("location", "")
            assert "evil" not in location, (path, answer.status, location)
            assert not location.startswith("//"), location


def test_no_server_banner(live_server: LiveServer) -> None:
    with connection(live_server) as conn:
        conn.send(HEALTH)
        answer = conn.answer()
    assert answer.status == 200
    assert "server" not in answer.headers


def test_a_draining_server_answers_and_closes_the_connections_it_has(tmp_path: Path) -> None:
    """SIGTERM to every process (as Heroku sends it) while a request is in flight and another
    connection is idle: the request is answered with ``Connection: close``, then that
    connection ends with a FIN; the idle one ends with a FIN too, before it is used."""
    database_url = f"sqlite:///{tmp_path}/service.db"
    with start_live_server(
        database_url, tmp_path, BCRYPT_ROUNDS="14", WEB_CONCURRENCY="1"
    ) as server:
        signup = json.dumps({"username": "late", "password": "slow-enough-to-be-in-flight"})
        with connection(server) as busy, connection(server) as idle:
            idle.send(HEALTH)
            assert idle.answer().status == 200
            busy.send(
                request(
                    "POST",
                    "/signup",
                    "Content-Type: application/json",
                    f"Content-Length: {len(signup)}",
                    body=signup.encode(),
                )
            )
            time.sleep(0.3)  # hashing now
            os.killpg(server.process.pid, signal.SIGTERM)
            answer = busy.answer()
            assert answer.status == 201
            assert answer.closes
            assert busy.closed_cleanly()
            assert idle.closed_cleanly()
