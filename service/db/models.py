"""SQLAlchemy tables: users, login sessions (refresh-token families), items, idempotency keys,
the mail outbox, account tokens (email verification and password reset),
and the TOTP second factor (factors, recovery codes, pending ``mfa_token``s).

Alembic's migrations in ``service/db/migrations`` create these tables; this module is what the
code queries against, and the migration tests check the two agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names spelled out so migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both engines.

    SQLite has no time zones, so values are stored as naive UTC and given ``tzinfo=UTC``
    again when read; PostgreSQL uses ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        found: datetime = value
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """An account. ``username_key`` is the case-folded username that must be unique.

    ``email`` is the optional address in its canonical form and ``email_key`` the form it is
    compared in (``service.security.email_addresses``). ``email_verified_at`` is when the
    owner confirmed the current address (None: unverified or no address). An unverified
    address is only a claim, which any number of accounts may make; a verified one is unique
    (``ix_users_verified_email_key``, a partial index both engines enforce).
    ``role`` is ``user`` or ``admin`` (``service.security.roles``); a user whose ``is_active``
    is false is disabled: it cannot log in and has no live session.
    """

    __tablename__ = "users"
    __table_args__ = (
        Index(
            "ix_users_verified_email_key",
            "email_key",
            unique=True,
            sqlite_where=text("email_verified_at IS NOT NULL"),
            postgresql_where=text("email_verified_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    email_key: Mapped[str | None] = mapped_column(String(320), index=True, default=None)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    role: Mapped[str] = mapped_column(String(16), server_default="user")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())


class LoginSession(Base):
    """One login: a refresh-token family (RFC 9700 section 4.14).

    ``refresh_jti`` is the ``jti`` of the one refresh token of this family that may still be
    spent; every other refresh token of the family is spent already. ``previous_jti`` is the
    one it replaced and ``rotated_at`` when (the replacement's ``iat`` is it in whole seconds), both
    NULL until the first rotation: what a reuse within ``REFRESH_REUSE_INTERVAL`` needs to get
    the same successor again. No column holds a usable token. ``expires_at`` is the absolute
    end set at login, which rotation never moves.
    """

    __tablename__ = "sessions"
    # ``service purge`` finds the sessions that ended long ago by these two.
    __table_args__ = (
        Index("ix_sessions_expires_at", "expires_at"),
        Index("ix_sessions_revoked_at", "revoked_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    refresh_jti: Mapped[str] = mapped_column(String(64))
    previous_jti: Mapped[str | None] = mapped_column(String(64), default=None)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    user_agent: Mapped[str | None] = mapped_column(String(512), default=None)
    client_address: Mapped[str | None] = mapped_column(String(64), default=None)
    #: How the login authenticated (RFC 8176 method names, space-separated): ``pwd`` or
    #: ``pwd otp``; every access token of the session carries it as its ``amr`` claim.
    amr: Mapped[str] = mapped_column(String(32), server_default="pwd")


class Item(Base):
    """A resource owned by one user. ``version`` counts updates and is the ``ETag``."""

    __tablename__ = "items"
    __table_args__ = (Index("ix_items_owner_page", "owner_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """The answer to a creating POST sent with an ``Idempotency-Key``, replayed to its retries.

    ``scope`` is whose key it is (``user:<id>``, or ``signup`` for the one unauthenticated
    creating route), so two callers' keys never meet. ``fingerprint`` is the SHA-256 of the
    request (method, path, canonical body) that the key was first used with. The row is written
    in the transaction of the write it answers; ``status`` is NULL only inside that transaction.
    ``owner_id`` makes the keys go with their account (``ON DELETE CASCADE``).
    """

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, default=None
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    headers: Mapped[str | None] = mapped_column(Text, default=None)
    body: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AccountToken(Base):
    """A one-time token sent by email: ``verify_email`` confirms an address, ``reset_password``
    sets a new password.

    Only ``token_hash``, the SHA-256 of the token, is stored. ``binding`` ties the token to the
    account state it was issued for: the address it was sent to (``email_key``) for
    ``verify_email``, a digest of the password hash for ``reset_password``; once the account
    has changed, the token no longer matches and is dead. A token is deleted when it is spent.
    """

    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user_purpose", "user_id", "purpose"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    binding: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class OutboxMessage(Base):
    """An email waiting to be sent, or what is left of one that was (the transactional outbox).

    The row is inserted in the transaction of the change that causes the mail, so the mail is
    sent if and only if that change committed. ``available_at`` is when a sender may next
    claim the row: a claim moves it forward by the lease, a temporary failure by the backoff,
    so a sender that dies mid-delivery leaves a row that becomes claimable again. ``claim`` is
    the token of the sender that holds the current lease. ``status`` is ``pending``, ``sent``
    or ``failed`` (given up); the bodies are erased once it is no longer ``pending``, because
    they may carry one-time links. The row's ``id`` makes the RFC 5322 ``Message-ID``, the same
    on every attempt, so a receiver can recognise a duplicate.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_available_at", "status", "available_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(998))
    text_body: Mapped[str | None] = mapped_column(Text, default=None)
    html_body: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim: Mapped[str | None] = mapped_column(String(64), default=None)
    last_error: Mapped[str | None] = mapped_column(String(1000), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)


class TotpFactor(Base):
    """A user's TOTP authenticator (RFC 6238): at most one per account.

    ``secret`` is encrypted (``service.security.secret_box``). ``confirmed_at`` is NULL while
    the enrolment waits for its first code; only a confirmed factor is asked for at login.
    ``last_step`` is the time step of the last code accepted: no code of that step or an
    earlier one is accepted again.
    """

    __tablename__ = "totp_factors"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)


class RecoveryCode(Base):
    """An unused recovery code of a user, as its SHA-256; using it deletes the row."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MfaChallenge(Base):
    """An ``mfa_token`` issued by ``/login`` and not yet spent at ``/login/mfa``: ``token_id`` is
    its ``challenge_key``, a digest of its ``jti`` and the password and factor it was issued
    under (``service.security.tokens.mfa``)."""

    __tablename__ = "mfa_challenges"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
