"""SMTP delivery itself: STARTTLS, implicit TLS, login, and refusing to fall back to clear text.

The server is aiosmtpd over a real socket with a certificate made for the test; the client is
the service's ``SmtpTransport`` as ``SMTP_URL`` configures it, trusting that certificate.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest

from service.config.smtp_url import parse_smtp_url
from service.mail.smtp import SmtpTransport
from service.mail.transport import DeliveryFailed
from tests.smtp_server import Certificate, SmtpServer, self_signed

LOGIN = ("mailer", "s3cret pass@word")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("smtp-tls"))


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "noreply@service.example"
    mail["To"] = "ada@example.com"
    mail["Subject"] = "Hello"
    mail.set_content("Hello Ada")
    return mail


def url(scheme: str, server: SmtpServer, login: tuple[str, str] | None = LOGIN) -> str:
    credentials = f"{quote(login[0])}:{quote(login[1], safe='')}@" if login else ""
    return f"{scheme}://{credentials}127.0.0.1:{server.port}"


@pytest.fixture
def served() -> Iterator[list[SmtpServer]]:
    """Servers a test starts; all stopped at its end."""
    servers: list[SmtpServer] = []
    yield servers
    for server in servers:
        server.stop()


def start(served: list[SmtpServer], **options: object) -> SmtpServer:
    server = SmtpServer(**options)  # type: ignore[arg-type]
    server.start()
    served.append(server)
    return server


async def test_starttls_with_login(served: list[SmtpServer], certificate: Certificate) -> None:
    server = start(served, tls=certificate, login=LOGIN)
    transport = SmtpTransport(
        parse_smtp_url(url("smtp", server)), timeout=5, tls_context=certificate.client_context()
    )

    await transport.send(message())

    assert [str(mail["Subject"]) for mail in server.received] == ["Hello"]
    assert server.logins == ["mailer"]


# aiosmtpd cannot tell an implicit TLS connection is encrypted and warns about AUTH without TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_implicit_tls_with_login(served: list[SmtpServer], certificate: Certificate) -> None:
    server = start(served, tls=certificate, implicit_tls=True, login=LOGIN)
    transport = SmtpTransport(
        parse_smtp_url(url("smtps", server)), timeout=5, tls_context=certificate.client_context()
    )

    await transport.send(message())

    assert len(server.received) == 1
    assert server.logins == ["mailer"]


async def test_an_untrusted_certificate_is_a_temporary_failure(
    served: list[SmtpServer], certificate: Certificate
) -> None:
    """With the system's trust store the test's certificate is unknown: nothing is sent,
    and the message is kept for a later try (an operator can fix the trust)."""
    server = start(served, tls=certificate, login=LOGIN)
    transport = SmtpTransport(parse_smtp_url(url("smtp", server)), timeout=5)

    with pytest.raises(DeliveryFailed, match="certificate") as failure:
        await transport.send(message())

    assert not failure.value.permanent
    assert server.received == []
    assert server.logins == []


async def test_smtp_url_never_falls_back_to_clear_text(served: list[SmtpServer]) -> None:
    """``smtp://`` requires STARTTLS: a server that does not offer it gets neither the
    password nor the message."""
    server = start(served)
    transport = SmtpTransport(parse_smtp_url(url("smtp", server)), timeout=5)

    with pytest.raises(DeliveryFailed, match="STARTTLS") as failure:
        await transport.send(message())

    assert not failure.value.permanent
    assert server.received == []


async def test_a_wrong_password_is_a_temporary_failure(
    served: list[SmtpServer], certificate: Certificate
) -> None:
    """A refused login is the configuration's fault, not the message's: kept for later."""
    server = start(served, tls=certificate, login=LOGIN)
    wrong = url("smtp", server, ("mailer", "not-it"))
    transport = SmtpTransport(
        parse_smtp_url(wrong), timeout=5, tls_context=certificate.client_context()
    )

    with pytest.raises(DeliveryFailed) as failure:
        await transport.send(message())

    assert failure.value.reply_code == 535
    assert not failure.value.permanent
    assert "not-it" not in str(failure.value)
    assert server.received == []


async def test_nobody_listening_is_a_temporary_failure(tmp_path: Path) -> None:
    closed = SmtpServer()  # never started: its port refuses connections
    transport = SmtpTransport(parse_smtp_url(url("smtp+plain", closed, None)), timeout=5)

    with pytest.raises(DeliveryFailed, match="SMTPConnectError") as failure:
        await transport.send(message())

    assert not failure.value.permanent


async def test_plain_smtp_delivers_without_tls(served: list[SmtpServer]) -> None:
    server = start(served)
    transport = SmtpTransport(parse_smtp_url(url("smtp+plain", server, None)), timeout=5)

    await transport.send(message())

    assert len(server.received) == 1
