"""``SMTP_URL``: which SMTP server, how the connection is protected, and the login.

The forms (RFC 8314 recommends implicit TLS for submission; STARTTLS is RFC 3207):

- ``smtp://[user[:password]@]host[:port]``: STARTTLS, required (default port 587). A server
  that does not offer it is a failed delivery, never a fallback to clear text.
- ``smtps://[user[:password]@]host[:port]``: implicit TLS from the first byte (default 465).
- ``smtp+plain://[user[:password]@]host[:port]``: no TLS at all (default 25), for a relay on
  the same host or a test server.

The user and password are percent-decoded (write ``@`` as ``%40``). Certificates are checked
against the system's trust store (``SSL_CERT_FILE`` names another one). No path or query is
accepted, so a typo cannot be silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

Security = Literal["starttls", "tls", "none"]

_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("starttls", 587),
    "smtps": ("tls", 465),
    "smtp+plain": ("none", 25),
}


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to submit mail; ``password`` never shows in a repr."""

    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """The server ``url`` names; ``ValueError`` with a message that never repeats the password."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"use smtp:// (STARTTLS), smtps:// (TLS) or smtp+plain:// (no TLS), not {scheme!r}"
        )
    security, default_port = _SCHEMES[scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("the URL names no host (smtp://user:password@host:587)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("the URL may not have a path, a query or a fragment")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise ValueError("the URL has a password but no user")
    return SmtpServer(parts.hostname, port, security, username, password)
