"""The rules of login sessions, with no SQL and no HTTP: what a presented refresh token means,
when a session is live, and what a session looks like to them.

Each login is a refresh-token family (RFC 9700 section 4.14): see ``service.sessions.rotation``
for how a family is spent.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from service.security.tokens.session import REFRESH_TYP, VerifiedToken

#: RFC 8176 section 2 method names: a password login, and one completed with a TOTP code.
PASSWORD_AMR = "pwd"  # noqa: S105 - a method name, not a password
PASSWORD_AND_OTP_AMR = "pwd otp"  # noqa: S105 - method names

#: The answer to a refresh token that cannot be spent. Only reuse is told apart: its owner
#: must learn that the session ended (and log in again); a forged, expired or revoked token
#: gets one answer, so a guesser learns nothing more.
DEAD_DETAIL = "The refresh token is invalid, expired or revoked."
REUSED_DETAIL = (
    "The refresh token was already used, so its session has been ended for safety (a spent "
    "token presented again may have been stolen): log in again."
)


class LogoutScope(enum.StrEnum):
    """Which sessions a logout ends."""

    LOCAL = "local"
    OTHERS = "others"
    GLOBAL = "global"


class SessionLike(Protocol):
    """The columns of a ``sessions`` row that the token rules read."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def refresh_jti(self) -> str: ...
    @property
    def previous_jti(self) -> str | None: ...
    @property
    def rotated_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def amr(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A login session as stored (a row of ``sessions``)."""

    id: uuid.UUID
    user_id: uuid.UUID
    refresh_jti: str
    previous_jti: str | None
    rotated_at: datetime | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    user_agent: str | None
    client_address: str | None
    amr: str


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session about to be stored: the columns the token rules need before the INSERT."""

    id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    refresh_jti: str = ""
    previous_jti: str | None = None
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    amr: str = PASSWORD_AMR


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login came from, kept on the session for the owner to see."""

    user_agent: str | None
    address: str | None


@dataclass(frozen=True, slots=True)
class IssuedPair:
    """A fresh access and refresh token of one session, and their lifetimes in seconds."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def is_live(session: SessionLike | None, user_id: uuid.UUID, now: datetime) -> bool:
    """Whether ``session`` exists, is ``user_id``'s, is not revoked and is within its lifetime.

    The rule of ``queries.live_conditions``, for a row already fetched.
    """
    return (
        session is not None
        and session.user_id == user_id
        and session.revoked_at is None
        and session.expires_at > now
    )


class RefreshDecision(enum.Enum):
    ROTATE = "rotate"
    REPEAT = "repeat"
    REUSED = "reused"
    DEAD = "dead"


def decide_refresh(
    session: SessionLike | None, token: VerifiedToken, now: datetime, reuse_interval: int
) -> RefreshDecision:
    """What presenting ``token`` for ``session`` means (RFC 9700 section 4.14.2).

    DEAD: no such live session of this user, or past its absolute lifetime. ROTATE: it is the
    current token: spend it. REPEAT: it is the one the current token replaced, less than
    ``reuse_interval`` seconds ago: answer with that same successor again. REUSED: any other
    token of the family, so one spent before: end the session.
    """
    if not is_live(session, token.user_id, now):
        return RefreshDecision.DEAD
    assert session is not None
    if session.refresh_jti == token.token_id:
        return RefreshDecision.ROTATE
    if (
        reuse_interval > 0
        and session.previous_jti == token.token_id
        and session.rotated_at is not None
        # Negative when this request started before the rotation it lost to committed.
        and now - session.rotated_at < timedelta(seconds=reuse_interval)
    ):
        return RefreshDecision.REPEAT
    return RefreshDecision.REUSED


def proves_live_session(session: SessionLike | None, token: VerifiedToken, now: datetime) -> bool:
    """Whether ``token`` belongs to a live session and may act for it on other sessions.

    An access token proves it while its session is live (as for any protected route); a
    refresh token only while it is the session's unspent one.
    """
    if not is_live(session, token.user_id, now):
        return False
    assert session is not None
    return token.typ != REFRESH_TYP or session.refresh_jti == token.token_id
