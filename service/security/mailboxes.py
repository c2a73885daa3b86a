"""Email addresses as headers take them (MAIL_FROM, recipients): exactly one mailbox, nothing
that could add another.

Parsed with the standard library's RFC 5322 header parser (``email.policy.default``): a value
with a second address, a line break (which would start a new header) or any parse defect is
refused, so neither ``MAIL_FROM`` nor a recipient can smuggle in a ``Bcc``.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.policy import default


def single_mailbox(value: str) -> Address:
    """The one mailbox ``value`` names (``a@example.com`` or ``Name <a@example.com>``);
    ``ValueError`` otherwise."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("an address may not contain a line break")
    header = default.header_factory("To", value)
    addresses = header.addresses
    if header.defects or len(addresses) != 1:
        raise ValueError("write one address: `name@example.com` or `Name <name@example.com>`")
    address: Address = addresses[0]
    if not address.username or not address.domain:
        raise ValueError("write one address: `name@example.com` or `Name <name@example.com>`")
    return address
