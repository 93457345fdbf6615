"""Load tests and drills: one row per run with its measured result.

Revision ID: 0009_readiness_runs
Revises: 0008_alert_storms
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_readiness_runs"
down_revision = "0008_alert_storms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readiness_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_readiness_env_kind", "readiness_runs", ["environment", "kind", "finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_readiness_env_kind", table_name="readiness_runs")
    op.drop_table("readiness_runs")
