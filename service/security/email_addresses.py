"""Account email addresses: the one form they are stored in, and the one way they are compared.

An address is checked with ``email-validator`` (syntax only: no DNS lookup on a request) and
kept in its **canonical form**: the local part exactly as received, ``@``, the domain as its
IDNA 2008 A-label in lower case (UTS #46 mapping, so ``Straße.Example`` and
``xn--strae-oqa.example`` are one domain and ``strasse.example`` another). Two addresses are
the same address when their **keys** are equal: the canonical form with the ASCII letters of
the local part in lower case (RFC 5321 section 2.4 lets a server tell ``Bob`` from ``bob``; no
provider does, and people type either).

Lengths are RFC 5321's (section 4.5.3.1): at most 64 octets before the ``@`` and 254 in all
(the longest path, 256, less its angle brackets), counted on the A-label form that SMTP
carries.

**Decision: no internationalized local parts.** An address with anything but ASCII before the
``@`` (``josé@``, ``日本@``, the ligature in ``oﬃce@``) can only be delivered with the SMTPUTF8
extension (RFC 6531) on every hop, starting with the relay this service submits to, and many
submission services do not offer it: such an account would be created and its link would never
arrive. Those addresses are refused with a 422 that says why (``InternationalLocalPart``).
Internationalized domains need no extension (their A-label is ASCII) and are accepted.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

#: RFC 5321 section 4.5.3.1.1: the local part, octets.
MAX_LOCAL_PART = 64
#: RFC 5321 section 4.5.3.1.3 (a path of 256 octets holds an address of 254).
MAX_ADDRESS = 254

SMTPUTF8_REFUSED = (
    "This service mails only addresses whose part before the @ is ASCII: it does not use "
    "SMTPUTF8 (RFC 6531), which many mail relays lack. Use another address."
)


class InvalidAddress(ValueError):
    """Not an address this service can store and mail; ``str()`` says why, without echoing
    the value."""


class InternationalLocalPart(InvalidAddress):
    """An address whose local part needs SMTPUTF8."""

    def __init__(self) -> None:
        super().__init__(SMTPUTF8_REFUSED)


def canonical_email(value: str) -> str:
    """``value`` in canonical form (see the module doc); ``InvalidAddress`` if it is none.

    Spaces and tabs around the address are dropped, as forms add them.
    """
    value = value.strip(" \t")
    if len(value) > MAX_ADDRESS:  # before any IDNA work, whose cost grows with the length
        raise InvalidAddress(f"An address has at most {MAX_ADDRESS} characters.")
    try:
        found = validate_email(
            value,
            check_deliverability=False,
            allow_smtputf8=True,  # so that such an address is told apart, and said so
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,  # the local part's length
        )
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None
    if not found.local_part.isascii():
        raise InternationalLocalPart
    address = f"{found.local_part}@{found.ascii_domain.lower()}"
    if len(address) > MAX_ADDRESS:  # email-validator counts the same; kept explicit
        raise InvalidAddress(f"An address has at most {MAX_ADDRESS} characters.")
    return address


def email_key(address: str) -> str:
    """The form in which a canonical address is compared and must be unique once verified:
    ``Alice@example.com`` is ``alice@example.com``; only ASCII letters are folded."""
    local, _, domain = address.rpartition("@")
    return f"{ascii_lower(local)}@{domain.lower()}"


def ascii_lower(text: str) -> str:
    """``text`` with A-Z as a-z and every other character left as it is (``casefold`` would
    also make ``ß`` ``ss`` and ``ﬃ`` ``ffi``, and ``str.lower`` the Kelvin sign ``k``)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}
