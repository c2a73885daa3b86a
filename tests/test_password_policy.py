"""The password policy: length, not the username, not on the shipped list of common passwords."""

from __future__ import annotations

from importlib import resources

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from service.db.models import User
from service.security import passwords
from service.security.passwords import (
    COMMON_PASSWORDS_FILE,
    RULE_SENTENCES,
    SAME_AS_USERNAME,
    TOO_COMMON,
    common_passwords,
    is_common,
    password_problem,
)

# --- the rules ------------------------------------------------------------------------------


def test_the_common_password_list_ships_inside_the_package() -> None:
    assert resources.files(passwords.__package__ or "").joinpath(COMMON_PASSWORDS_FILE).is_file()


def test_the_common_password_list_is_loaded_once_and_lower_cased() -> None:
    listed = common_passwords()

    assert common_passwords() is listed
    assert len(listed) > 19_000
    assert {"password", "123456789", "iloveyou1", "qwertyuiop"} <= listed
    assert all(entry == entry.lower() for entry in listed)


@pytest.mark.parametrize("password", ["password123", "PASSWORD123", " Password123 ", "Qwertyuiop"])
def test_common_passwords_are_found_in_any_letter_case(password: str) -> None:
    assert is_common(password)
    assert password_problem(password) == TOO_COMMON


@pytest.mark.parametrize("password", ["tidal-copper-orchard-7", "k7#Qw9!zV", "password123!x"])
def test_uncommon_passwords_pass(password: str) -> None:
    assert password_problem(password, "alice") is None


@pytest.mark.parametrize("password", ["zephyrine77", "ZEPHYRINE77", "Zephyrine77"])
def test_the_username_is_refused_in_any_letter_case(password: str) -> None:
    assert password_problem(password, "zephyrine77") == SAME_AS_USERNAME


def test_a_password_containing_the_username_is_allowed() -> None:
    """Only equality is refused: a long passphrase may well contain the name."""
    assert password_problem("zephyrine77 likes long walks", "zephyrine77") is None


# --- at signup ------------------------------------------------------------------------------


async def user_count(app: Quart) -> int:
    async with app.extensions["service"].db.read() as db:
        found: int = await db.scalar(select(func.count()).select_from(User))
    return found


@pytest.mark.parametrize("password", ["password123", "Iloveyou1", "QWERTYUIOP", "1234567890"])
async def test_signup_refuses_a_common_password(app: Quart, client: Client, password: str) -> None:
    response = await client.post("/signup", json={"username": "alice", "password": password})

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = await response.get_json()
    assert body["errors"] == [{"field": "password", "message": TOO_COMMON}]
    assert body["detail"] == RULE_SENTENCES[TOO_COMMON]
    assert password not in await response.get_data(as_text=True)
    assert await user_count(app) == 0


async def test_the_seeds_first_step_is_refused_with_the_rule_named(client: Client) -> None:
    """The seed's walkthrough signs up john with secret123: refused (NIST SP 800-63B section
    3.1.1.2), and the answer's top line says why, not "the schema"."""
    response = await client.post("/signup", json={"username": "john", "password": "secret123"})

    assert response.status_code == 422
    detail = (await response.get_json())["detail"]
    assert detail == (
        "The password is too common: choose another one (it is on the list of the 20,000 "
        "most common passwords)."
    )


@pytest.mark.parametrize("password", ["zephyrine77", "ZEPHYRINE77"])
async def test_signup_refuses_the_username_as_password(
    app: Quart, client: Client, password: str
) -> None:
    response = await client.post("/signup", json={"username": "Zephyrine77", "password": password})

    assert response.status_code == 422
    body = await response.get_json()
    assert body["errors"] == [{"field": "password", "message": SAME_AS_USERNAME}]
    assert body["detail"] == "The password must not be the same as the username."
    assert await user_count(app) == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"username": "alice", "password": "short"},
            "Invalid password: String should have at least 8 characters.",
        ),
        (
            {"username": "al ice", "password": "tidal-copper-orchard-7"},
            "Invalid username: may contain only the characters _ . @ + - besides ASCII letters "
            "and digits.",
        ),
        ({"username": "al", "password": "short"}, "Invalid fields: username, password."),
        ({"password": "tidal-copper-orchard-7"}, "Invalid username: Field required."),
        # A policy failure beside another failure: the fields are listed, not one rule.
        ({"username": "al", "password": "password123"}, "Invalid fields: username, password."),
    ],
)
async def test_a_422_detail_names_what_is_wrong(
    client: Client, body: dict[str, str], detail: str
) -> None:
    response = await client.post("/signup", json=body)

    assert response.status_code == 422
    assert (await response.get_json())["detail"] == detail


@pytest.mark.parametrize(("password", "accepted"), [("k7#Qw9!", False), ("k7#Qw9!z", True)])
async def test_signup_needs_eight_characters(client: Client, password: str, accepted: bool) -> None:
    response = await client.post("/signup", json={"username": "alice", "password": password})

    assert response.status_code == (201 if accepted else 422)


async def test_signup_with_a_good_password_after_a_refusal_succeeds(client: Client) -> None:
    refused = await client.post("/signup", json={"username": "alice", "password": "password1"})
    accepted = await client.post(
        "/signup", json={"username": "alice", "password": "tidal-copper-orchard-7"}
    )

    assert (refused.status_code, accepted.status_code) == (422, 201)
