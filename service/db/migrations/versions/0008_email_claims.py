"""email claims: canonical addresses, unique only once verified

Addresses were stored as email-validator normalised them (the domain in Unicode) and compared
case-folded (``casefold()``, which also folds ``ß`` into ``ss`` and ``ﬃ`` into ``ffi``), and
every address was unique, verified or not. Now an address is stored in its canonical form (the
local part as received, the domain as its lower-case IDNA A-label), compared with only its
ASCII letters folded, and unique only among verified addresses: an unverified address is a
claim that any number of accounts may make.

The upgrade rewrites each address and its key in that form, and the binding of the pending
verification token that was sent to it (the binding is the key). The canonical rule is
written out here, not imported, so that this revision does the same whatever the code does
later. Stored addresses were accepted by the old rules, so a local part over 64 characters
stays (it was delivered before); an address that cannot be mailed without SMTPUTF8 or does not
parse cannot have been stored (queueing its message failed the transaction), and would be
removed from its account. Two verified addresses that become one: the one verified first
keeps it, as at run time; the others stay on their accounts unverified, as claims.

The downgrade goes back to the old form and the old unique index: of the accounts that share
an address then, the one that verified it (else the oldest) keeps it and the others lose it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
VERIFIED = sa.text("email_verified_at IS NOT NULL")

users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String(320)),
    sa.column("email_key", sa.String(320)),
    sa.column("email_verified_at", sa.DateTime(timezone=True)),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
tokens = sa.table(
    "account_tokens",
    sa.column("user_id", sa.Uuid()),
    sa.column("purpose", sa.String(32)),
    sa.column("binding", sa.String(320)),
)


def upgrade() -> None:
    op.drop_index("ix_users_email_key", table_name="users")
    connection = op.get_bind()
    for row in _users_with_email(connection):
        canonical = _canonical(row.email)
        if canonical is None:
            _set_address(connection, row, None, None, keep_verified=False)
        else:
            _set_address(connection, row, canonical, _key(canonical), keep_verified=True)
    _keep_one_verified(connection)
    op.create_index("ix_users_email_key", "users", ["email_key"])
    op.create_index(
        "ix_users_verified_email_key",
        "users",
        ["email_key"],
        unique=True,
        sqlite_where=VERIFIED,
        postgresql_where=VERIFIED,
    )


def downgrade() -> None:
    op.drop_index("ix_users_verified_email_key", table_name="users")
    op.drop_index("ix_users_email_key", table_name="users")
    connection = op.get_bind()
    kept: set[str] = set()
    rows = list(_users_with_email(connection))
    # The first verified, else the oldest account, first: each old key goes to the first seen.
    rows.sort(
        key=lambda row: (
            row.email_verified_at is None,
            row.email_verified_at or row.created_at,
            row.created_at,
            str(row.id),
        )
    )
    for row in rows:
        old = _old_form(row.email)
        key = old.casefold()
        if key in kept:
            _set_address(connection, row, None, None, keep_verified=False)
            continue
        kept.add(key)
        _set_address(connection, row, old, key, keep_verified=True)
    op.create_index("ix_users_email_key", "users", ["email_key"], unique=True)


def _canonical(email: str) -> str | None:
    """The local part as stored, ``@``, the domain's lower-case A-label; None for an address
    that does not parse or needs SMTPUTF8."""
    try:
        found = validate_email(email, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    if not found.local_part.isascii():
        return None
    return f"{found.local_part}@{found.ascii_domain.lower()}"


def _key(canonical: str) -> str:
    local, _, domain = canonical.rpartition("@")
    folded = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in local)
    return f"{folded}@{domain}"


def _old_form(email: str) -> str:
    """The address as revision 0004's code stored it: email-validator's normalised form."""
    try:
        normalized: str = validate_email(
            email, check_deliverability=False, allow_smtputf8=True
        ).normalized
    except EmailNotValidError:
        return email
    return normalized


def _users_with_email(connection: sa.Connection) -> Iterator[Any]:
    """Every account with an address, read in batches by id (no long-lived cursor)."""
    last = None
    while True:
        query = (
            sa.select(
                users.c.id,
                users.c.email,
                users.c.email_key,
                users.c.email_verified_at,
                users.c.created_at,
            )
            .where(users.c.email.is_not(None))
            .order_by(users.c.id)
            .limit(BATCH)
        )
        if last is not None:
            query = query.where(users.c.id > last)
        rows = connection.execute(query).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def _set_address(
    connection: sa.Connection,
    row: Any,
    email: str | None,
    key: str | None,
    *,
    keep_verified: bool,
) -> None:
    """Write the account's address and key; its pending verification link follows the key."""
    if keep_verified and (email, key) == (row.email, row.email_key):
        return
    values: dict[str, Any] = {"email": email, "email_key": key}
    if not keep_verified:
        values["email_verified_at"] = None
    connection.execute(sa.update(users).where(users.c.id == row.id).values(**values))
    pending = sa.and_(
        tokens.c.user_id == row.id,
        tokens.c.purpose == "verify_email",
        tokens.c.binding == row.email_key,
    )
    if key is None:
        connection.execute(sa.delete(tokens).where(pending))
    elif key != row.email_key:
        connection.execute(sa.update(tokens).where(pending).values(binding=key))


def _keep_one_verified(connection: sa.Connection) -> None:
    """Of verified addresses that became one, the first verified stays verified."""
    shared = (
        sa.select(users.c.email_key)
        .where(users.c.email_verified_at.is_not(None))
        .group_by(users.c.email_key)
        .having(sa.func.count() > 1)
    )
    for key in connection.execute(shared).scalars().all():
        holders = connection.execute(
            sa.select(users.c.id)
            .where(users.c.email_key == key, users.c.email_verified_at.is_not(None))
            .order_by(users.c.email_verified_at, users.c.created_at, users.c.id)
        ).scalars()
        later = list(holders)[1:]
        connection.execute(
            sa.update(users).where(users.c.id.in_(later)).values(email_verified_at=None)
        )
