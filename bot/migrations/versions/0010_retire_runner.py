"""Drop the table of the hand-written runner that Alembic replaced.

Revision ID: 0010_retire_runner
Revises: 0009_readiness_runs
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_retire_runner"
down_revision = "0009_readiness_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only databases from before Alembic have it; a new one never did.
    if sa.inspect(op.get_bind()).has_table("schema_migrations"):
        op.drop_table("schema_migrations")


def downgrade() -> None:
    pass
