"""Alert storms: one digest per channel, and which groups it lists.

Revision ID: 0008_alert_storms
Revises: 0007_outbox_priority
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_alert_storms"
down_revision = "0007_outbox_priority"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing groups were posted on their own, outside any storm.
    op.add_column("alert_groups", sa.Column("storm_id", sa.String(length=32), nullable=True))
    op.add_column("alert_groups", sa.Column("own_message", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "alert_storms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("rendered", sa.JSON(), nullable=False),
        sa.Column("silenced_all", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_storms_channel", "alert_storms", ["channel", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alert_storms_channel", table_name="alert_storms")
    op.drop_table("alert_storms")
    with op.batch_alter_table("alert_groups") as batch:
        batch.drop_column("own_message")
        batch.drop_column("storm_id")
