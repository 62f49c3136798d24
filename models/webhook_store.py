"""SQL of webhooks: a tenant's endpoints and delivery log, the outbox fan-out, and the dispatcher's claims.

Stores flush, never commit. The outbox is the event history itself: a status change and its
``job_event`` row commit together, and ``fan_out`` turns committed events into deliveries (marking
them in the same transaction), so no event is lost between a commit and a send.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import webhooks
from models.base import utcnow
from models.errors import NotFound
from models.status import JobStatus, TrialStatus
from models.store import Page, _page
from models.tables import Job, JobEvent, Trial, TrialEvent, WebhookDelivery, WebhookEndpoint
from models.webhooks import Attempt, DeliveryStatus

MAX_HISTORY = 50  # attempts kept per delivery (the schedule makes 7; redeliveries add more)


class WebhookStore:
    """A tenant's endpoints and their delivery log; every read takes the tenant in its WHERE clause."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        """Insert an endpoint."""
        endpoint.created_at = utcnow()
        self.session.add(endpoint)
        self.session.flush()
        return endpoint

    def get(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        """The tenant's endpoint, or ``webhook_not_found``."""
        endpoint = self.session.scalar(
            select(WebhookEndpoint).where(
                WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id
            )
        )
        if endpoint is None:
            raise NotFound("webhook_not_found", f"webhook endpoint '{endpoint_id}' does not exist")
        return endpoint

    def page(self, tenant_id: str, *, limit: int, cursor: str | None) -> Page[WebhookEndpoint]:
        """The tenant's endpoints, newest first."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
        return _page(self.session, stmt, WebhookEndpoint, limit, cursor)

    def delete(self, tenant_id: str, endpoint_id: str) -> None:
        """Remove an endpoint; its deliveries (pending ones too) go with it."""
        self.session.delete(self.get(tenant_id, endpoint_id))
        self.session.flush()

    def deliveries(
        self, tenant_id: str, endpoint_id: str, *, limit: int, cursor: str | None
    ) -> Page[WebhookDelivery]:
        """An endpoint's delivery log, newest first (``webhook_not_found`` if not the tenant's)."""
        self.get(tenant_id, endpoint_id)
        owned = select(WebhookEndpoint.id).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id
        )
        stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id.in_(owned))
        return _page(self.session, stmt, WebhookDelivery, limit, cursor)

    def redeliver(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
        """Make a delivery due now (same id, same body); a failed one gets one more attempt."""
        self.get(tenant_id, endpoint_id)
        owned = select(WebhookEndpoint.id).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id
        )
        delivery = self.session.scalar(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id.in_(owned))
            .with_for_update()
        )
        if delivery is None:
            raise NotFound("delivery_not_found", f"delivery '{delivery_id}' does not exist")
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = utcnow()
        # An attempt in flight now no longer counts (its claim is gone): this one replaces it.
        delivery.claim_token = None
        self.session.flush()
        return delivery


@dataclass(frozen=True)
class DueDelivery:
    """A delivery a dispatcher holds: what to send where, and the claim that fences its outcome."""

    id: str
    url: str
    secret: str
    body: str
    event: str
    claim_token: str


@dataclass(frozen=True)
class _Event:
    source: str
    tenant_id: str
    job_id: str
    event: str
    at: datetime
    data: dict[str, Any]


class OutboxStore:
    """The dispatcher's side: events into deliveries, due deliveries claimed, attempts recorded."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def fan_out(self, *, limit: int = 500) -> int:
        """Write a delivery per subscribed endpoint for committed events not yet fanned out; how many."""
        events = self._job_events(limit) + self._trial_events(limit)
        if not events:
            return 0
        tenants = {e.tenant_id for e in events}
        endpoints = self.session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant_id.in_(tenants))
        ).all()
        now, written = utcnow(), 0
        for event in events:
            for endpoint in endpoints:
                # An endpoint hears of events after it was made, never of the tenant's past.
                if (
                    endpoint.tenant_id != event.tenant_id
                    or endpoint.created_at > event.at
                    or not webhooks.subscribed(endpoint.events, event.event)
                ):
                    continue
                self.session.add(
                    WebhookDelivery(
                        endpoint_id=endpoint.id,
                        event=event.event,
                        source=event.source,
                        job_id=event.job_id,
                        body=webhooks.body(event.event, event.at, event.data),
                        status=DeliveryStatus.PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        history=[],
                        created_at=now,
                    )
                )
                written += 1
        self.session.flush()
        return written

    def _job_events(self, limit: int) -> list[_Event]:
        rows = self.session.execute(
            select(JobEvent, Job)
            .join(Job, Job.id == JobEvent.job_id)
            .where(JobEvent.fanned_out_at.is_(None))
            .order_by(JobEvent.id)
            .limit(limit)
            .with_for_update(of=JobEvent, skip_locked=True)  # two dispatchers never take one event
        ).all()
        self._mark(JobEvent, [event.id for event, _ in rows])
        out = []
        for event, job in rows:
            if event.from_status == event.to_status:
                continue  # a note (which engine ran) or a lease takeover: not a status change
            data: dict[str, Any] = {
                "job_id": job.id,
                "kind": job.kind,
                "name": job.name,
                "status": event.to_status,
                "previous_status": event.from_status,
                "reason": event.reason,
                "attempt": job.attempt,
            }
            if event.to_status == JobStatus.FAILED:
                data["error"] = job.error
            if event.to_status == JobStatus.SUCCEEDED:
                data["best"] = job.best
            source = f"job_event:{event.id}"
            out.append(_Event(source, job.tenant_id, job.id, f"job.{event.to_status}", event.at, data))
        return out

    def _trial_events(self, limit: int) -> list[_Event]:
        rows = self.session.execute(
            select(TrialEvent, Trial, Job.tenant_id)
            .join(Trial, Trial.id == TrialEvent.trial_id)
            .join(Job, Job.id == Trial.job_id)
            .where(TrialEvent.fanned_out_at.is_(None), TrialEvent.to_status == TrialStatus.COMPLETED)
            .order_by(TrialEvent.id)
            .limit(limit)
            .with_for_update(of=TrialEvent, skip_locked=True)
        ).all()
        self._mark(TrialEvent, [event.id for event, _, _ in rows])
        data = {
            event.id: {
                "job_id": trial.job_id,
                "trial_id": trial.id,
                "number": trial.number,
                "score": trial.score,
                "metrics": trial.metrics,
                "hyperparameters": trial.hyperparameters,
            }
            for event, trial, _ in rows
        }
        return [
            _Event(f"trial_event:{e.id}", tenant, t.job_id, "trial.completed", e.at, data[e.id])
            for e, t, tenant in rows
            if e.from_status != e.to_status
        ]

    def _mark(self, table: type[JobEvent] | type[TrialEvent], ids: Sequence[int]) -> None:
        if ids:
            self.session.execute(update(table).where(table.id.in_(ids)).values(fanned_out_at=utcnow()))

    def claim_due(self, *, limit: int, hold: timedelta) -> list[DueDelivery]:
        """Take up to ``limit`` due deliveries for ``hold`` (past it, a lost dispatcher's are due again)."""
        now = utcnow()
        ids = list(
            self.session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        token = secrets.token_hex(8)
        self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(claim_token=token, next_attempt_at=now + hold)
        )
        rows = self.session.execute(
            select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id.in_(ids))
        ).all()
        return [DueDelivery(d.id, url, secret, d.body, d.event, token) for d, url, secret in rows]

    def record(self, due: DueDelivery, attempt: Attempt, *, schedule: list[float]) -> WebhookDelivery | None:
        """Note an attempt and decide what follows (delivered, a retry at its time, or failed); None if
        the delivery was redelivered or deleted meanwhile (then this attempt is not counted)."""
        delivery = self.session.scalar(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == due.id, WebhookDelivery.claim_token == due.claim_token)
            .with_for_update()
        )
        if delivery is None:
            return None
        now = utcnow()
        delivery.attempts += 1
        entry = {
            "at": now.isoformat(),
            "status_code": attempt.status_code,
            "error": attempt.error,
            "duration_ms": attempt.duration_ms,
        }
        delivery.history = [*delivery.history, entry][-MAX_HISTORY:]
        delivery.last_status_code = attempt.status_code
        delivery.last_error = attempt.error
        delivery.claim_token = None
        if attempt.ok:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at, delivery.next_attempt_at = now, None
        else:
            delivery.next_attempt_at = webhooks.next_attempt(now, delivery.attempts, schedule)
            failed = delivery.next_attempt_at is None
            delivery.status = DeliveryStatus.FAILED if failed else DeliveryStatus.PENDING
        self.session.flush()
        return delivery
