"""Helpers of the email account tests: sign up with an address, read links from received mail."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

from quart.typing import TestClientProtocol as Client

from service.security.email_addresses import canonical_email
from tests.helpers import Account, log_in
from tests.mailbox import Mailbox

PASSWORD = "s3cret-passw0rd"
NEW_PASSWORD = "tidal-copper-orchard-7"
_TOKEN_IN_LINK = re.compile(r"#token=([A-Za-z0-9_-]+)")


async def sign_up_with_email(
    client: Client, username: str, email: str, password: str = PASSWORD
) -> Account:
    response = await client.post(
        "/signup", json={"username": username, "password": password, "email": email}
    )
    assert response.status_code == 201, await response.get_data(as_text=True)
    user_id = (await response.get_json())["id"]
    tokens = await log_in(client, username, password)
    return Account(user_id, username, password, tokens["access_token"], tokens["refresh_token"])


async def sign_up_verified(
    client: Client, mailbox: Mailbox, username: str, email: str, password: str = PASSWORD
) -> Account:
    """Sign up with ``email`` and follow the link mailed to it."""
    account = await sign_up_with_email(client, username, email, password)
    token = link_token(await mailbox.next(canonical_email(email)), "/verify-email")
    response = await client.post("/verify-email", json={"token": token})
    assert response.status_code == 204, await response.get_data(as_text=True)
    return account


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def link_token(message: EmailMessage, path: str) -> str:
    """The token of the link to ``path`` in the message's text, checked against its HTML."""
    text = text_of(message)
    links = re.findall(r"https?://\S+", text)
    matching = [link for link in links if path + "#token=" in link]
    assert len(matching) == 1, text
    found = _TOKEN_IN_LINK.search(matching[0])
    assert found is not None
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert found.group(1) in html.get_content()
    return found.group(1)


async def me(client: Client, account: Account) -> Any:
    response = await client.get("/me", headers=account.headers)
    assert response.status_code == 200
    return await response.get_json()


async def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = await response.get_json()
    return body
