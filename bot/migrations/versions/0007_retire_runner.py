"""Drop the table of the hand-written runner that Alembic replaced.

Revision ID: 0007_retire_runner
Revises: 0006_backups
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_retire_runner"
down_revision = "0006_backups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only databases from before Alembic have it; a new one never did.
    if sa.inspect(op.get_bind()).has_table("schema_migrations"):
        op.drop_table("schema_migrations")


def downgrade() -> None:
    pass
