"""A real SMTP server for the mail tests: aiosmtpd in a thread of the test process.

``SmtpServer`` listens on a free port of 127.0.0.1 and keeps every message it accepted. A test
can make it refuse the next messages with a reply of its choice (``refuse_next``), stop it
(connections are then refused, as with a server that is down) and start it again on the same
port. Optional STARTTLS, implicit TLS and AUTH use a certificate made for the test
(``self_signed``).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.live_server import free_port


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    pem: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate alone."""
        return ssl.create_default_context(cadata=self.pem)


def self_signed(directory: Path) -> Certificate:
    """A certificate for ``localhost`` and 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_text(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file, pem)


class _Handler:
    """aiosmtpd's handler: accepts, or answers DATA with the queued refusals first."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        with self._server.lock:
            if self._server.rcpt_refusals:
                return self._server.rcpt_refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self._server.data_delay:
            await asyncio.sleep(self._server.data_delay)
        with self._server.lock:
            self._server.attempts += 1
            if self._server.data_refusals:
                return self._server.data_refusals.pop(0)
            message = message_from_bytes(envelope.content, policy=default)
            assert isinstance(message, EmailMessage)
            self._server.received.append(message)
            self._server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """See the module docstring; ``received`` holds the accepted messages in order."""

    def __init__(
        self,
        *,
        tls: Certificate | None = None,
        implicit_tls: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.data_refusals: list[str] = []
        self.rcpt_refusals: list[str] = []
        self.attempts = 0
        #: Seconds the server takes before answering DATA (a slow server).
        self.data_delay = 0.0
        self.logins: list[str] = []
        self._tls = tls
        self._implicit_tls = implicit_tls
        self._login = login
        self._controller: Controller | None = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if self._login is not None and isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if (user, password) == self._login:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self._tls is not None and self._implicit_tls:
            kwargs["ssl_context"] = self._tls.server_context()
        elif self._tls is not None:
            kwargs.update(tls_context=self._tls.server_context(), require_starttls=True)
        if self._login is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            # aiosmtpd cannot tell that an implicit TLS connection is encrypted.
            kwargs["auth_require_tls"] = not self._implicit_tls
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            **kwargs,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse_next(self, *replies: str, at: str = "DATA") -> None:
        """Answer the next messages' DATA (or RCPT TO) with ``replies``, one each."""
        with self.lock:
            (self.data_refusals if at == "DATA" else self.rcpt_refusals).extend(replies)

    async def wait_for(self, count: int, within: float = 10.0) -> list[EmailMessage]:
        """The accepted messages once there are ``count``; fails after ``within`` seconds."""
        await until(lambda: len(self.received) >= count, within, f"{count} messages")
        return list(self.received)


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float, what: str) -> None:
    """Wait until ``condition`` holds, checking every 20 ms; AssertionError after ``within``."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within} s for {what}")
        await asyncio.sleep(0.02)
