"""Account flows: registration, the login's password check, changing and re-entering the
password, and deleting the account. The SQL is ``service.accounts.queries``; ending the
account's other sessions is ``service.sessions``'."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from service.accounts.queries import (
    UserRecord,
    delete_user,
    insert_user,
    select_user,
    select_user_by_username,
    update_password_hash,
    username_key,
)
from service.errors import (
    EmailNotVerified,
    InvalidGrant,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from service.security.events import security_event
from service.security.passwords import RULE_SENTENCES, SAME_AS_USERNAME, is_username
from service.security.roles import Role
from service.services import Services
from service.sessions import devices
from service.sessions.logout import log_revoked
from service.sessions.queries import (
    revoke_sessions,
    select_live_sessions,
    touch_live_session,
)

UNVERIFIED = (
    "Confirm the account's email address first with the link mailed to it. A login refused "
    "for this asks for a new link (a few an hour at most), should the last one be lost or "
    "expired."
)


async def register(
    services: Services, username: str, password: str, role: Role = Role.USER
) -> UserRecord:
    """Create an account; the password is hashed before any database work starts."""
    password_hash = await services.passwords.hash(password)
    async with services.db.write() as db:
        return await insert_user(db, username, password_hash, role=role)


async def log_in(
    services: Services,
    username: str,
    password: str,
    *,
    address: str | None,
    device_credential: str | None,
    unverified: Callable[[uuid.UUID], Awaitable[None]] | None = None,
) -> UserRecord:
    """The account whose password this is, checked under the brute-force limits.

    A ``device_credential`` that verifies and names this very account makes the attempt count
    on that device's limit instead of the username-wide one (``devices.recognised_device``);
    for a username without an account no credential can, so such attempts always count on
    the username. ``InvalidGrant`` for a wrong password, ``TooManyRequests`` while a limit
    holds. With ``REQUIRE_VERIFIED_EMAIL``, ``EmailNotVerified`` for an account with an
    unverified address, only once the password is known to be right: the answer tells the
    verification state to nobody without the password; ``unverified`` is called with the
    account's id first (to mail a new link).
    """
    async with services.db.read() as db:
        user = await select_user_by_username(db, username)
    device = devices.recognised_device(
        services, device_credential, user.id if user is not None else None
    )
    async with services.limits.password_attempt(
        username_key(username), address=address, device=device
    ):
        found = await check_password(services, user, password)
    if services.settings.require_verified_email and found.email and not found.email_verified:
        security_event(
            "login_refused", level=logging.WARNING, user_id=found.id, reason="unverified_email"
        )
        if unverified is not None:
            await unverified(found.id)
        raise EmailNotVerified(UNVERIFIED)
    return found


async def check_password(services: Services, user: UserRecord | None, password: str) -> UserRecord:
    """``user`` if this is their password and the account is active, else ``InvalidGrant``.

    An unknown username (``user`` None), a wrong password and a disabled account fail alike,
    in the same time and with the same error, so the answer does not reveal which usernames
    exist or which accounts an admin disabled: the password is checked in full before the
    account's state is. A hash made with fewer bcrypt rounds than configured is replaced. No
    connection is held while bcrypt runs.
    """
    if user is None:
        await services.passwords.verify_nothing(password)
        security_event("login_failed", level=logging.WARNING, reason="unknown_user")
        raise InvalidGrant("Invalid username or password.")
    outcome = await services.passwords.verify(password, user.password_hash)
    if not outcome.ok:
        security_event(
            "login_failed", level=logging.WARNING, user_id=user.id, reason="wrong_password"
        )
        raise InvalidGrant("Invalid username or password.")
    if not user.is_active:
        security_event(
            "login_failed", level=logging.WARNING, user_id=user.id, reason="account_disabled"
        )
        raise InvalidGrant("Invalid username or password.")
    if outcome.new_hash is not None:
        async with services.db.write() as db:
            await update_password_hash(db, user.id, outcome.new_hash)
    return user


async def change_password(
    services: Services,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    current_password: str,
    new_password: str,
    *,
    address: str | None,
) -> None:
    """Replace the password and end every other session of the user.

    The schema has applied the length and common-password rules; the username rule is
    applied here. A wrong current password is a ``ValidationFailed`` on ``current_password``,
    not a 401: the caller's tokens are fine and a client must not throw them away. A wrong
    current password is a password guess too, limited as at ``/login``: on the client
    ``address``'s counter, and on the account's side on the counter of the calling session,
    which is a known device of the account (its login proved the password). So strangers
    failing at ``/login`` cannot lock the owner out of this, and a thief of one access token
    cannot lock the owner out of ``/login``. The calling session stays live, and is checked
    again in the transaction that stores the hash, so a logout racing with the change wins.
    """
    async with services.db.read() as db:
        user = await select_user(db, user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    if is_username(new_password, user.username):
        raise ValidationFailed(
            RULE_SENTENCES[SAME_AS_USERNAME],
            errors=[{"field": "new_password", "message": SAME_AS_USERNAME}],
        )
    await check_current_password(
        services,
        user,
        session_id,
        current_password,
        address=address,
        failed_event="password_change_failed",
    )
    new_hash = await services.passwords.hash(new_password)
    now = datetime.now(UTC)
    async with services.db.write() as db:
        if not await touch_live_session(db, user_id, session_id, now):
            raise Unauthorized("The session of this access token has ended.", token_presented=True)
        await update_password_hash(db, user_id, new_hash)
        revoked = await revoke_sessions(db, user_id, now, keep=session_id)
    security_event("password_changed", user_id=user_id, session_id=session_id)
    log_revoked(user_id, revoked, how="password_change")


async def confirm_password(
    services: Services,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    password: str,
    *,
    address: str | None,
    failed_event: str = "password_confirmation_failed",
) -> UserRecord:
    """The caller's account once ``password`` is its password, asked again before a sensitive
    change (the second factor, the email address). Limited and answered as the current
    password of ``change_password``: ``ValidationFailed`` on ``current_password``, counted per
    address and per calling session; ``failed_event`` names the security event of a miss."""
    async with services.db.read() as db:
        user = await select_user(db, user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    await check_current_password(
        services, user, session_id, password, address=address, failed_event=failed_event
    )
    return user


async def check_current_password(
    services: Services,
    user: UserRecord,
    session_id: uuid.UUID,
    password: str,
    *,
    address: str | None,
    failed_event: str,
) -> None:
    """``ValidationFailed`` on ``current_password`` unless ``password`` is ``user``'s; a guess
    counted on the client ``address`` and on the calling session, a known device of the
    account (see ``change_password``), and logged as ``failed_event`` when wrong."""
    async with services.limits.password_attempt(
        user.username_key,
        address=address,
        device=f"session:{session_id}",
        failure=ValidationFailed,
    ):
        if not (await services.passwords.verify(password, user.password_hash)).ok:
            security_event(
                failed_event,
                level=logging.WARNING,
                user_id=user.id,
                session_id=session_id,
                reason="wrong_current_password",
            )
            raise ValidationFailed(
                "The current password is wrong.",
                errors=[{"field": "current_password", "message": "is not the current password"}],
            )


async def delete_account(services: Services, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Delete the user; their sessions and items go with them (``ON DELETE CASCADE``)."""
    async with services.db.write() as db:
        live = [session.id for session in await select_live_sessions(db, user_id)]
        deleted = await delete_user(db, user_id)
    if not deleted:
        raise NotFound("The account no longer exists.")
    security_event("account_deleted", user_id=user_id, session_id=session_id)
    log_revoked(user_id, live, how="account_deleted")
