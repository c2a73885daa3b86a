"""refresh grace: the spent predecessor of each session's refresh token and the rotation time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so existing sessions need no value: they have not rotated since the upgrade.
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("previous_jti", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("rotated_at")
        batch.drop_column("previous_jti")
