"""The persistent entities: tenants and keys, datasets, jobs with their history, trials, models,
webhook endpoints and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedAtMixin, JsonType, id_column, new_id


class Tenant(CreatedAtMixin, Base):
    """An organisation; every other object belongs to exactly one."""

    __tablename__ = "tenant"

    id: Mapped[str] = id_column("ten")
    name: Mapped[str] = mapped_column(String(200), unique=True)


class ApiKey(CreatedAtMixin, Base):
    """A bearer key, stored only as its SHA-256 (keys carry 256 bits, so no slow hash is needed)."""

    __tablename__ = "api_key"

    id: Mapped[str] = id_column("key")
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]  # renewed at most once per API process's key-cache TTL


class Dataset(CreatedAtMixin, Base):
    """An uploaded CSV: its profile in the row, its bytes on disk under ``storage_key``."""

    __tablename__ = "dataset"
    __table_args__ = (Index("ix_dataset_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = id_column("ds")
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(255))
    has_header: Mapped[bool]
    rows: Mapped[int]
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int]
    deleted_at: Mapped[datetime | None]


class Job(CreatedAtMixin, Base):
    """A train or search job; ``status`` changes only through ``JobStore.transition``."""

    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_job_status", "status"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_job_tenant_idempotency_key"),
    )

    id: Mapped[str] = id_column("job")
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("dataset.id"), index=True)
    target: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]]
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[dict[str, Any] | None]
    best: Mapped[dict[str, Any] | None]
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    trials_total: Mapped[int] = mapped_column(Integer, default=0)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    # Who holds the lease ("host:pid"): a claim on the same host may take over from a dead pid at once.
    worker: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    # A search's oracle (keras-tuner's own JSON state); the version makes coordinator steps atomic.
    search_state: Mapped[dict[str, Any] | None]
    search_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class StatusEventMixin:
    """A status change (or a note, ``from`` == ``to``): the history beside the current state."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    # The webhook outbox: set once the webhook dispatcher has written this event's deliveries.
    fanned_out_at: Mapped[datetime | None]


PENDING_FAN_OUT = text("fanned_out_at IS NULL")


class JobEvent(StatusEventMixin, Base):
    """One status change of a job."""

    __tablename__ = "job_event"
    __table_args__ = (
        Index("ix_job_event_fan_out", "id", postgresql_where=PENDING_FAN_OUT, sqlite_where=PENDING_FAN_OUT),
    )

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)


class TrialEvent(StatusEventMixin, Base):
    """One status change of a trial."""

    __tablename__ = "trial_event"
    __table_args__ = (
        Index(
            "ix_trial_event_fan_out",
            "id",
            postgresql_where=text("fanned_out_at IS NULL AND to_status = 'completed'"),
            sqlite_where=text("fanned_out_at IS NULL AND to_status = 'completed'"),
        ),
    )

    trial_id: Mapped[str] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)


class Trial(Base):
    """One model fit inside a job (a train job has exactly one); status changes via TrialStore.transition."""

    __tablename__ = "trial"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_trial_job_number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("trl"))
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    hyperparameters: Mapped[dict[str, Any]]
    score: Mapped[float | None]
    metrics: Mapped[dict[str, Any] | None]
    diagnostics: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_token: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    model_key: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class EpochMetric(Base):
    """The metrics of one epoch of one trial, with per-layer gradient norms."""

    __tablename__ = "epoch_metric"
    __table_args__ = (
        UniqueConstraint("trial_id", "execution", "epoch", name="uq_epoch_metric_trial_execution_epoch"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"), index=True)
    execution: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    epoch: Mapped[int]
    values: Mapped[dict[str, Any]]
    grad_norms: Mapped[dict[str, Any]]
    at: Mapped[datetime]


class Model(CreatedAtMixin, Base):
    """A saved ``.keras`` file with preprocessing inside, and what it was trained for."""

    __tablename__ = "model"

    id: Mapped[str] = id_column("mdl")
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(255))
    input_schema: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    storage_key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int]
    # Other formats made of it ({format: {storage_key, sha256, bytes, parity}}), by POST .../export.
    exports: Mapped[dict[str, Any] | None]


class WebhookEndpoint(CreatedAtMixin, Base):
    """A tenant's URL subscribed to events; ``secret`` (``whsec_...``) signs every delivery."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index("ix_webhook_endpoint_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = id_column("wh")
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JsonType)  # ["*"]: every event
    # HMAC needs the key itself, so it is stored as given out (unlike API keys, stored as hashes).
    secret: Mapped[str] = mapped_column(String(64))


class WebhookDelivery(CreatedAtMixin, Base):
    """One event for one endpoint: the body sent on every attempt, and when the next attempt is due."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "source", name="uq_webhook_delivery_endpoint_source"),
        Index("ix_webhook_delivery_endpoint_created", "endpoint_id", "created_at", "id"),
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = id_column("msg")  # the webhook-id header: the same on every attempt
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64))  # the outbox row it came from, e.g. "job_event:7"
    job_id: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # serialized once, so every attempt signs the same bytes
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due time while pending; while a dispatcher holds it (claim_token), when its hold lapses.
    next_attempt_at: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    delivered_at: Mapped[datetime | None]
