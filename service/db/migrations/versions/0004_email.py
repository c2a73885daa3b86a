"""email on accounts: an optional unique address, its verification, one-time account tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMN and a unique index, never a batch copy of ``users``: on SQLite that
    # would drop and recreate the table that sessions and items reference.
    op.add_column("users", sa.Column("email", sa.String(length=320), nullable=True))
    op.add_column("users", sa.Column("email_key", sa.String(length=320), nullable=True))
    op.add_column("users", sa.Column("email_verified_at", TIMESTAMP, nullable=True))
    op.create_index(op.f("ix_users_email_key"), "users", ["email_key"], unique=True)
    op.create_table(
        "account_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("binding", sa.String(length=320), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_account_tokens")),
    )
    op.create_index("ix_account_tokens_user_purpose", "account_tokens", ["user_id", "purpose"])
    op.create_index(op.f("ix_account_tokens_expires_at"), "account_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_account_tokens_expires_at"), table_name="account_tokens")
    op.drop_index("ix_account_tokens_user_purpose", table_name="account_tokens")
    op.drop_table("account_tokens")
    op.drop_index(op.f("ix_users_email_key"), table_name="users")
    # SQLite has DROP COLUMN since 3.35; the rows of users stay where they are.
    op.drop_column("users", "email_verified_at")
    op.drop_column("users", "email_key")
    op.drop_column("users", "email")
