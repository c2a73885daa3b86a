"""roles: users get a role (user or admin) and an is_active flag; sessions get purge indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Existing accounts become active users. Adding a column with a constant default is a change of
the catalogue only on PostgreSQL (11 and later) and an ALTER TABLE ADD COLUMN on SQLite: no
table is rewritten or copied, so the sessions and items that reference users stay untouched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("role", sa.String(length=16), server_default="user", nullable=False)
    )
    op.add_column(
        "users", sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    op.create_index(op.f("ix_sessions_revoked_at"), "sessions", ["revoked_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_revoked_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")
    op.drop_column("users", "is_active")
    op.drop_column("users", "role")
