"""webhooks: endpoints, deliveries, and the job/trial event outbox marker

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
PENDING = "fanned_out_at IS NULL"
TRIAL_PENDING = "fanned_out_at IS NULL AND to_status = 'completed'"


def upgrade() -> None:
    """Apply this revision."""
    for table in ("job_event", "trial_event"):
        op.add_column(table, sa.Column("fanned_out_at", sa.DateTime(timezone=True), nullable=True))
        # Events from before webhooks existed are not announced to endpoints made later.
        events = sa.table(table, sa.column("fanned_out_at", sa.DateTime(timezone=True)))
        op.execute(events.update().values(fanned_out_at=sa.func.current_timestamp()))
    for table, pending in (("job_event", PENDING), ("trial_event", TRIAL_PENDING)):
        op.create_index(
            f"ix_{table}_fan_out",
            table,
            ["id"],
            postgresql_where=sa.text(pending),
            sqlite_where=sa.text(pending),
        )
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("events", JSON, nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_webhook_endpoint_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoint")),
    )
    op.create_index(op.f("ix_webhook_endpoint_created_at"), "webhook_endpoint", ["created_at"], unique=False)
    op.create_index(
        "ix_webhook_endpoint_tenant_created", "webhook_endpoint", ["tenant_id", "created_at", "id"]
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("history", JSON, nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoint.id"],
            name=op.f("fk_webhook_delivery_endpoint_id_webhook_endpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint("endpoint_id", "source", name="uq_webhook_delivery_endpoint_source"),
    )
    op.create_index(op.f("ix_webhook_delivery_created_at"), "webhook_delivery", ["created_at"], unique=False)
    op.create_index(
        "ix_webhook_delivery_endpoint_created", "webhook_delivery", ["endpoint_id", "created_at", "id"]
    )
    op.create_index(
        "ix_webhook_delivery_due",
        "webhook_delivery",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_endpoint")
    op.drop_index("ix_trial_event_fan_out", table_name="trial_event")
    op.drop_index("ix_job_event_fan_out", table_name="job_event")
    for table in ("job_event", "trial_event"):
        op.drop_column(table, "fanned_out_at")
