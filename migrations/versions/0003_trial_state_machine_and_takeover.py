"""trial events, trial leases and dispatch times, the job's lease holder

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "trial_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trial_id", sa.String(length=40), nullable=False),
        sa.Column("at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_trial_event_trial_id_trial"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_event")),
    )
    op.create_index(op.f("ix_trial_event_trial_id"), "trial_event", ["trial_id"], unique=False)
    op.add_column("trial", sa.Column("lease_token", sa.String(length=64), nullable=True))
    op.add_column("trial", sa.Column("dispatched_at", models.base.UTCDateTime(timezone=True), nullable=True))
    op.add_column("job", sa.Column("worker", sa.String(length=255), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.drop_column("job", "worker")
    op.drop_column("trial", "dispatched_at")
    op.drop_column("trial", "lease_token")
    op.drop_index(op.f("ix_trial_event_trial_id"), table_name="trial_event")
    op.drop_table("trial_event")
