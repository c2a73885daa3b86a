"""Revocation is immediate: every way a session ends stops its access tokens at the next request.

Access tokens are valid for minutes by their ``exp``; these tests prove that they are refused
(401 ``invalid_token``) right after their session ends, whatever ended it, and that the
sessions which should survive keep working.
"""

from __future__ import annotations

from quart.typing import TestClientProtocol as Client

from tests.helpers import Account, sign_up
from tests.session_helpers import (
    another_login,
    assert_access_refused,
    assert_access_works,
    assert_session_alive,
    bearer,
    live_session_ids,
    refresh,
)


async def test_logout_local_refuses_its_access_token_at_once(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)
    await assert_access_works(client, alice.access_token)

    await client.post("/logout", json={"refresh_token": alice.refresh_token})

    await assert_access_refused(client, alice.access_token)
    await assert_access_works(client, phone.access_token)


async def test_logout_others_refuses_the_other_access_tokens_at_once(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)
    laptop = await another_login(client, alice)

    await client.post("/logout", json={"scope": "others"}, headers=bearer(laptop.access_token))

    await assert_access_refused(client, alice.access_token)
    await assert_access_refused(client, phone.access_token)
    await assert_access_works(client, laptop.access_token)


async def test_logout_global_refuses_every_access_token_at_once(
    client: Client, alice: Account, bob: Account
) -> None:
    phone = await another_login(client, alice)

    await client.post("/logout", json={"scope": "global"}, headers=bearer(alice.access_token))

    await assert_access_refused(client, alice.access_token)
    await assert_access_refused(client, phone.access_token)
    await assert_access_works(client, bob.access_token)


async def test_refresh_reuse_refuses_the_access_tokens_of_the_session_at_once(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)
    rotated = await (await refresh(client, alice.refresh_token)).get_json()
    await assert_access_works(client, rotated["access_token"])

    replay = await refresh(client, alice.refresh_token)

    assert replay.status_code == 400
    await assert_access_refused(client, alice.access_token)
    await assert_access_refused(client, rotated["access_token"])
    await assert_session_alive(client, phone)


async def test_password_change_refuses_the_other_access_tokens_at_once(
    client: Client, alice: Account
) -> None:
    phone = await another_login(client, alice)

    response = await client.post(
        "/me/password",
        json={"current_password": alice.password, "new_password": "tidal-copper-orchard-7"},
        headers=bearer(alice.access_token),
    )

    assert response.status_code == 204
    await assert_access_refused(client, phone.access_token)
    await assert_access_works(client, alice.access_token)


async def test_session_deletion_refuses_its_access_token_at_once(
    client: Client, alice: Account
) -> None:
    (desk_id,) = await live_session_ids(client, alice)
    tablet = await another_login(client, alice)
    (tablet_id,) = set(await live_session_ids(client, alice)) - {desk_id}

    response = await client.delete(f"/sessions/{tablet_id}", headers=bearer(alice.access_token))

    assert response.status_code == 204
    await assert_access_refused(client, tablet.access_token)
    await assert_access_works(client, alice.access_token)


async def test_account_deletion_refuses_every_access_token_at_once(
    client: Client, alice: Account, bob: Account
) -> None:
    phone = await another_login(client, alice)

    response = await client.delete("/me", headers=bearer(alice.access_token))

    assert response.status_code == 204
    await assert_access_refused(client, alice.access_token)
    await assert_access_refused(client, phone.access_token)
    await assert_access_works(client, bob.access_token)


async def test_tokens_of_a_deleted_account_stay_refused_after_the_name_is_taken_again(
    client: Client, alice: Account
) -> None:
    await client.delete("/me", headers=bearer(alice.access_token))

    again = await sign_up(client, "alice", "a-brand-new-passphrase")

    assert again.id != alice.id
    await assert_access_refused(client, alice.access_token)
    await assert_access_works(client, again.access_token)
