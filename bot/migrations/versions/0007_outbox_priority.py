"""Outbox rows carry a priority: a critical alert goes before a queue of warnings in its channel.

Revision ID: 0007_outbox_priority
Revises: 0006_backups
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_outbox_priority"
down_revision = "0006_backups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows already queued keep their order: they all get the default priority.
    op.add_column("outbox", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("priority")
