"""Drop the table of the hand-written runner that Alembic replaced.

Revision ID: 0009_retire_runner
Revises: 0008_alert_storms
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_retire_runner"
down_revision = "0008_alert_storms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only databases from before Alembic have it; a new one never did.
    if sa.inspect(op.get_bind()).has_table("schema_migrations"):
        op.drop_table("schema_migrations")


def downgrade() -> None:
    pass
