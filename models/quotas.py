"""Per-tenant quotas: jobs waiting or running at once, bytes of datasets and models kept, webhooks."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.errors import RateLimited
from models.status import TERMINAL, JobStatus
from models.tables import Dataset, Job, Model, Tenant, WebhookEndpoint

ACTIVE = tuple(s.value for s in JobStatus if s not in TERMINAL)
# A job ends in minutes; a tenant over its storage must delete something first.
JOBS_RETRY_AFTER_S = 30.0
STORAGE_RETRY_AFTER_S = 300.0


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialize one tenant's check-then-insert until the transaction ends, so concurrent requests
    cannot both pass a quota with one slot left (a row lock on Postgres; SQLite has one writer)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def check_active_jobs(session: Session, tenant_id: str, limit: int) -> None:
    """429 when the tenant already has ``limit`` jobs queued, running or cancelling."""
    active = session.scalar(
        select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE))
    )
    if (active or 0) >= limit:
        raise RateLimited(
            "quota_active_jobs",
            f"this tenant already has {active} jobs queued or running (the quota is {limit});"
            " submit again when some have finished, or cancel some",
            retry_after_s=JOBS_RETRY_AFTER_S,
        )


def check_stored_bytes(session: Session, tenant_id: str, adding: int, limit: int) -> None:
    """429 when storing ``adding`` more bytes would take the tenant's datasets and models past ``limit``."""
    datasets = session.scalar(
        select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
            Dataset.tenant_id == tenant_id, Dataset.deleted_at.is_(None)
        )
    )
    models = session.scalar(
        select(func.coalesce(func.sum(Model.size_bytes), 0)).where(Model.tenant_id == tenant_id)
    )
    stored = int(datasets or 0) + int(models or 0)
    if stored + adding > limit:
        raise RateLimited(
            "quota_storage",
            f"this tenant stores {stored} bytes; {adding} more would pass its {limit}-byte quota;"
            " delete datasets it no longer needs",
            retry_after_s=STORAGE_RETRY_AFTER_S,
        )


def check_webhook_endpoints(session: Session, tenant_id: str, limit: int) -> None:
    """429 when the tenant already subscribes ``limit`` endpoints (each event fans out to every one)."""
    endpoints = session.scalar(
        select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    )
    if (endpoints or 0) >= limit:
        raise RateLimited(
            "quota_webhooks",
            f"this tenant already has {endpoints} webhook endpoints (the quota is {limit});"
            " delete one it no longer needs",
            retry_after_s=STORAGE_RETRY_AFTER_S,
        )
