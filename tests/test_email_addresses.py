"""One address, one form, one comparison: canonical addresses, RFC 5321 lengths, IDNA domains,
and addresses that need SMTPUTF8 refused with a 422 that says so, never a 5xx."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from quart.typing import TestClientProtocol as Client

from service.config import Settings
from service.security.email_addresses import (
    MAX_ADDRESS,
    MAX_LOCAL_PART,
    InternationalLocalPart,
    InvalidAddress,
    canonical_email,
    email_key,
)
from service.security.mailboxes import single_mailbox
from tests.email_helpers import (
    PASSWORD,
    assert_problem,
    link_token,
    me,
    sign_up_verified,
    sign_up_with_email,
)
from tests.helpers import Account, make_settings
from tests.mailbox import Mailbox, mail_settings
from tests.smtp_server import SmtpServer

INTERNATIONAL = ["josé@example.com", "über@example.com", "日本@例え.jp", "oﬃce@example.com"]


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    """The app mails through its own sender to the test's SMTP server."""
    return make_settings(database_url, **mail_settings(smtp_server))


@pytest.mark.parametrize(
    ("given_as", "canonical", "key"),
    [
        ("Alice@Example.COM", "Alice@example.com", "alice@example.com"),
        # IDNA 2008 / UTS #46: ß stays ß, so straße and strasse are two domains.
        ("x@Straße.example", "x@xn--strae-oqa.example", "x@xn--strae-oqa.example"),
        ("x@XN--STRAE-OQA.example", "x@xn--strae-oqa.example", "x@xn--strae-oqa.example"),
        ("x@strasse.example", "x@strasse.example", "x@strasse.example"),
        (
            "a@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com",
            "a@example.com",
            "a@example.com",
        ),  # fullwidth
        ("x@\u0430pple.com", "x@xn--pple-43d.com", "x@xn--pple-43d.com"),  # Cyrillic a
        (" padded@example.com\t", "padded@example.com", "padded@example.com"),
    ],
)
def test_an_address_has_one_canonical_form_and_one_key(
    given_as: str, canonical: str, key: str
) -> None:
    assert canonical_email(given_as) == canonical
    assert email_key(canonical) == key


def test_only_ascii_letters_are_folded() -> None:
    """``casefold()`` made ``oﬃce`` the same as ``office`` and ``faß`` the same as ``fass``;
    the key folds A-Z only (internationalized local parts are refused before, but the key
    must not merge what mail servers keep apart)."""
    assert email_key("OFFICE@fass.de") == "office@fass.de"
    assert email_key("Oﬃce@xn--fa-hia.de") == "oﬃce@xn--fa-hia.de"
    assert email_key("\u212a@example.com") != email_key("k@example.com")  # the Kelvin sign


@pytest.mark.parametrize("address", INTERNATIONAL)
def test_a_local_part_that_needs_smtputf8_is_refused(address: str) -> None:
    with pytest.raises(InternationalLocalPart):
        canonical_email(address)


def test_rfc_5321_lengths() -> None:
    local = "l" * MAX_LOCAL_PART
    assert canonical_email(f"{local}@example.com") == f"{local}@example.com"
    with pytest.raises(InvalidAddress):
        canonical_email(f"{local}l@example.com")
    labels = ["a" * 63, "b" * 63, "c" * 63]
    domain = ".".join([*labels, "d" * (MAX_ADDRESS - 2 - 3 * 64 - 4), "com"])
    longest = f"x@{domain}"
    assert len(longest) == MAX_ADDRESS
    assert canonical_email(longest) == longest
    with pytest.raises(InvalidAddress):
        canonical_email(f"xy@{domain}")


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.emails(),
        st.builds(
            lambda local, domain: f"{local}@{domain}",
            st.text(min_size=1, max_size=70),
            st.one_of(st.text(min_size=1, max_size=30), st.sampled_from(["straße.de", "例え.jp"])),
        ),
    )
)
def test_every_accepted_address_is_one_mailbox_the_mail_code_takes(value: str) -> None:
    """What validation lets through, the outbox can always queue: an address that broke
    the mail code after passing validation was a 500."""
    try:
        address = canonical_email(value)
    except InvalidAddress:
        return
    assert address.isascii()
    assert len(address) <= MAX_ADDRESS
    assert len(address.rpartition("@")[0]) <= MAX_LOCAL_PART
    assert str(single_mailbox(address)) == address
    assert canonical_email(address) == address  # canonical is a fixed point


@pytest.mark.parametrize("address", INTERNATIONAL)
async def test_signup_with_an_internationalized_local_part_is_a_422_that_says_so(
    client: Client, mailbox: Mailbox, address: str
) -> None:
    response = await client.post(
        "/signup", json={"username": "alice", "password": PASSWORD, "email": address}
    )

    body = await assert_problem(response, 422)
    assert "SMTPUTF8" in body["detail"]
    assert body["errors"][0]["field"] == "email"
    assert address not in await response.get_data(as_text=True)
    login = await client.post("/login", form={"username": "alice", "password": PASSWORD})
    assert login.status_code == 400  # nothing written
    assert await mailbox.queued() == 0


@pytest.mark.parametrize("address", INTERNATIONAL)
async def test_changing_to_an_internationalized_local_part_is_a_422_that_says_so(
    client: Client, mailbox: Mailbox, alice: Account, address: str
) -> None:
    response = await client.post(
        "/me/email",
        json={"email": address, "current_password": alice.password},
        headers=alice.headers,
    )

    assert "SMTPUTF8" in (await assert_problem(response, 422))["detail"]
    assert (await me(client, alice))["email"] is None
    assert await mailbox.queued() == 0


@pytest.mark.parametrize(
    "address", ["l" * 65 + "@example.com", "l" * 73 + "@example.com", "x" * 250 + "@ex.com"]
)
async def test_addresses_over_the_rfc_5321_lengths_are_refused(
    client: Client, mailbox: Mailbox, address: str
) -> None:
    response = await client.post(
        "/signup", json={"username": "alice", "password": PASSWORD, "email": address}
    )

    assert (await assert_problem(response, 422))["errors"][0]["field"] == "email"
    assert await mailbox.queued() == 0


async def test_an_idn_domain_is_stored_as_its_a_label_and_mailed_there(
    client: Client, mailbox: Mailbox, smtp_server: SmtpServer
) -> None:
    """The link goes through the real SMTP server to the A-label address, which needs no
    SMTPUTF8; the owner confirms it."""
    alice = await sign_up_with_email(client, "alice", "Alice@Straße.Example")

    assert (await me(client, alice))["email"] == "Alice@xn--strae-oqa.example"
    message = await mailbox.next("Alice@xn--strae-oqa.example")
    assert smtp_server.envelopes[-1][1] == ["Alice@xn--strae-oqa.example"]
    token = link_token(message, "/verify-email")
    assert (await client.post("/verify-email", json={"token": token})).status_code == 204
    assert (await me(client, alice))["email_verified"] is True


async def test_strasse_and_strasse_with_eszett_are_two_addresses(
    client: Client, mailbox: Mailbox
) -> None:
    """Each is verified by its own account: as one address, the second would be refused."""
    await sign_up_verified(client, mailbox, "alice", "x@straße.example")
    bob = await sign_up_verified(client, mailbox, "bob", "x@strasse.example")

    assert (await me(client, bob))["email"] == "x@strasse.example"
    assert (await me(client, bob))["email_verified"] is True


async def test_the_a_label_in_any_case_is_the_same_address(
    client: Client, mailbox: Mailbox
) -> None:
    """Writing one's own address as its A-label in capitals only changes how it is written:
    it stays verified and no mail goes out."""
    alice = await sign_up_verified(client, mailbox, "alice", "x@straße.example")

    response = await client.post(
        "/me/email",
        json={"email": "X@XN--STRAE-OQA.EXAMPLE", "current_password": alice.password},
        headers=alice.headers,
    )

    assert response.status_code == 204
    body = await me(client, alice)
    assert (body["email"], body["email_verified"]) == ("X@xn--strae-oqa.example", True)
    assert await mailbox.queued() == 1  # the signup's link only
