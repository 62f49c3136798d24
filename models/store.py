"""All SQL lives here. Stores flush, never commit: the caller owns the transaction."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import json_safe, utcnow
from models.errors import Conflict, InvalidInput, NotFound
from models.status import ALLOWED_FROM, TERMINAL, TRIAL_ALLOWED_FROM, TRIAL_TERMINAL, JobStatus, TrialStatus
from models.tables import (
    ApiKey,
    Dataset,
    EpochMetric,
    Job,
    JobEvent,
    Model,
    Tenant,
    Trial,
    TrialEvent,
    WebhookDelivery,
    WebhookEndpoint,
)

Row = TypeVar("Row", Dataset, Job, WebhookEndpoint, WebhookDelivery)
T = TypeVar("T")
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a newest-first listing and the cursor of the next one."""

    items: list[T]
    next_cursor: str | None


def _encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None or "\x00" in row_id:
            raise ValueError("not a cursor this API issued")
        return at, row_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid_cursor", "the cursor is malformed; pass back next_cursor") from exc


def _page(session: Session, stmt: Select[Row], table: type[Row], limit: int, cursor: str | None) -> Page[Row]:
    if cursor:
        at, row_id = _decode_cursor(cursor)
        stmt = stmt.where(or_(table.created_at < at, and_(table.created_at == at, table.id < row_id)))
    stmt = stmt.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, _encode_cursor(rows[-1].created_at, rows[-1].id) if more else None)


class ClaimOutcome(StrEnum):
    """What a claim found: work to start, lost work to resume, a live holder, or nothing to do."""

    CLAIMED = "claimed"
    TAKEN_OVER = "taken_over"
    BUSY = "busy"
    GONE = "gone"


@dataclass(frozen=True)
class Takeover:
    """When running work may be taken from its holder: its lease went stale, or it died on this host."""

    lease_timeout: timedelta
    host: str
    pid_alive: Callable[[int], bool]

    def reason(self, heartbeat_at: datetime | None, holder: str | None) -> str | None:
        """Why the holder counts as lost, or None while it may still be alive."""
        if heartbeat_at is None or heartbeat_at < utcnow() - self.lease_timeout:
            return "lease expired"
        host, _, pid = (holder or "").rsplit(" ", 1)[-1].rpartition(":")
        if host == self.host and pid.isdigit() and not self.pid_alive(int(pid)):
            return f"process {pid} is gone"
        return None


def _claim(
    row: Any, takeover: Takeover, worker: str, move: Callable[[str, str | None], bool]
) -> ClaimOutcome:
    """The claim rules shared by jobs and trials; ``move(reason, held_by)`` does the fenced transition."""
    if row.status == "queued":
        return ClaimOutcome.CLAIMED if move(f"claimed by {worker}", None) else ClaimOutcome.BUSY
    if row.status != "running":
        return ClaimOutcome.GONE
    why = takeover.reason(row.heartbeat_at, row.worker)
    if why is None:
        return ClaimOutcome.BUSY
    taken = move(f"taken over by {worker} from {row.worker} ({why})", row.lease_token)
    return ClaimOutcome.TAKEN_OVER if taken else ClaimOutcome.BUSY


def resend_due(created_at: datetime, dispatched_at: datetime | None, older_than: timedelta) -> bool:
    """Whether queued work's message is due again: after ``older_than``, then at doubling intervals, so
    work waiting in a long (healthy) backlog gets a handful of duplicate messages, not hundreds."""
    now = utcnow()
    if dispatched_at is None:
        return created_at < now - older_than
    return dispatched_at < now - max(older_than, dispatched_at - created_at)


def hash_key(plaintext: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


class KeyStore:
    """Tenants and their API keys."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def ensure_tenant(self, name: str) -> Tenant:
        """Return the tenant called ``name``, creating it if needed."""
        tenant = self.session.scalar(select(Tenant).where(Tenant.name == name))
        if tenant is None:
            tenant = Tenant(name=name)
            self.session.add(tenant)
            self.session.flush()
        return tenant

    def create_key(self, tenant_id: str, *, name: str | None = None) -> tuple[ApiKey, str]:
        """Create a key; the plaintext is returned once and never stored."""
        plaintext = "tfg_" + secrets.token_urlsafe(32)
        key = ApiKey(tenant_id=tenant_id, prefix=plaintext[:12], key_hash=hash_key(plaintext), name=name)
        self.session.add(key)
        self.session.flush()
        return key, plaintext

    def tenant_for(self, plaintext: str) -> str | None:
        """The tenant id a live key belongs to (noting that it was used now), or None."""
        return self.session.scalar(
            update(ApiKey)
            .where(ApiKey.key_hash == hash_key(plaintext), ApiKey.revoked_at.is_(None))
            .values(last_used_at=utcnow())
            .returning(ApiKey.tenant_id)
        )

    def keys(self, tenant_name: str) -> Sequence[ApiKey]:
        """A tenant's keys, revoked ones too, oldest first."""
        return self.session.scalars(
            select(ApiKey)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(Tenant.name == tenant_name)
            .order_by(ApiKey.created_at)
        ).all()

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent); ``key_not_found`` if there is no such key."""
        key = self.session.get(ApiKey, key_id)
        if key is None:
            raise NotFound("key_not_found", f"API key '{key_id}' does not exist")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            self.session.flush()
        return key

    def rotate(self, key_id: str) -> tuple[ApiKey, str]:
        """Replace a live key: a new key for the same tenant and name, the old one revoked."""
        old = self.session.get(ApiKey, key_id)
        if old is None or old.revoked_at is not None:
            raise NotFound("key_not_found", f"no live API key '{key_id}'")
        self.revoke(key_id)
        return self.create_key(old.tenant_id, name=old.name)


class DatasetStore:
    """Uploaded datasets of one tenant."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, dataset: Dataset) -> Dataset:
        """Insert a dataset row."""
        self.session.add(dataset)
        self.session.flush()
        return dataset

    def get(self, tenant_id: str, dataset_id: str) -> Dataset:
        """The tenant's live dataset, or ``dataset_not_found``."""
        dataset = self.session.scalar(
            select(Dataset).where(
                Dataset.id == dataset_id,
                Dataset.tenant_id == tenant_id,
                Dataset.deleted_at.is_(None),
            )
        )
        if dataset is None:
            raise NotFound("dataset_not_found", f"dataset '{dataset_id}' does not exist")
        return dataset

    def get_any(self, dataset_id: str) -> Dataset:
        """A dataset by id regardless of tenant (for workers)."""
        dataset = self.session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound("dataset_not_found", f"dataset '{dataset_id}' does not exist")
        return dataset

    def page(self, tenant_id: str, *, limit: int, cursor: str | None) -> Page[Dataset]:
        """The tenant's datasets, newest first."""
        stmt = select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.deleted_at.is_(None))
        return _page(self.session, stmt, Dataset, limit, cursor)

    def mark_deleted(self, tenant_id: str, dataset_id: str) -> Dataset:
        """Soft-delete a dataset no active job uses; jobs keep their history."""
        dataset = self.get(tenant_id, dataset_id)
        busy = self.session.scalar(
            select(func.count()).select_from(Job).where(Job.dataset_id == dataset_id, Job.status.in_(ACTIVE))
        )
        if busy:
            raise Conflict("dataset_in_use", f"dataset '{dataset_id}' is used by {busy} active job(s)")
        dataset.deleted_at = utcnow()
        self.session.flush()
        return dataset


class JobStore:
    """Jobs, their status machine and their event history."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, job: Job, *, reason: str = "submitted") -> Job:
        """Insert a queued job and its first event."""
        now = utcnow()
        job.status = JobStatus.QUEUED
        job.created_at = now
        job.updated_at = now
        self.session.add(job)
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise Conflict("idempotency_conflict", "a job with this Idempotency-Key exists") from exc
        self.session.add(
            JobEvent(job_id=job.id, at=now, from_status=None, to_status=JobStatus.QUEUED, reason=reason)
        )
        self.session.flush()
        return job

    def by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        """The job a tenant already submitted under this Idempotency-Key."""
        return self.session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))

    def get(self, tenant_id: str, job_id: str) -> Job:
        """The tenant's job, or ``job_not_found``."""
        job = self.session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
        if job is None:
            raise NotFound("job_not_found", f"job '{job_id}' does not exist")
        return job

    def get_any(self, job_id: str) -> Job:
        """A job by id regardless of tenant (for workers)."""
        job = self.session.get(Job, job_id, populate_existing=True)
        if job is None:
            raise NotFound("job_not_found", f"job '{job_id}' does not exist")
        return job

    def status_of(self, job_id: str) -> JobStatus:
        """A job's current status alone: workers read it after every chunk of epochs, not the whole row."""
        status = self.session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None:
            raise NotFound("job_not_found", f"job '{job_id}' does not exist")
        return JobStatus(status)

    def page(
        self,
        tenant_id: str,
        *,
        status: str | None,
        kind: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Job]:
        """The tenant's jobs, newest first, optionally filtered."""
        stmt = select(Job).where(Job.tenant_id == tenant_id)
        if status:
            stmt = stmt.where(Job.status == status)
        if kind:
            stmt = stmt.where(Job.kind == kind)
        return _page(self.session, stmt, Job, limit, cursor)

    def events(self, job_id: str, *, tenant_id: str | None = None) -> Sequence[JobEvent]:
        """The job's status history, oldest first; with ``tenant_id``, only if the job is the tenant's
        (``job_not_found`` otherwise: every job has at least its ``submitted`` event)."""
        stmt = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        if tenant_id is not None:
            stmt = stmt.join(Job, Job.id == JobEvent.job_id).where(Job.tenant_id == tenant_id)
        events = self.session.scalars(stmt).all()
        if tenant_id is not None and not events:
            raise NotFound("job_not_found", f"job '{job_id}' does not exist")
        return events

    def transition(
        self,
        job_id: str,
        to: JobStatus,
        *,
        reason: str,
        only_from: Iterable[JobStatus] | None = None,
        lease_token: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> JobStatus | None:
        """Change status if allowed (compare-and-swap) and write its event; return the old status.

        Returns None when the job's current status does not allow the change, or when
        ``lease_token`` is given and another worker now holds the job.
        """
        allowed = ALLOWED_FROM[to] & (frozenset(only_from) if only_from else ALLOWED_FROM[to])
        for _ in range(5):
            current = self.session.scalar(select(Job.status).where(Job.id == job_id))
            if current is None:
                raise NotFound("job_not_found", f"job '{job_id}' does not exist")
            if JobStatus(current) not in allowed:
                return None
            now = utcnow()
            changes: dict[str, Any] = {"status": to, "updated_at": now}
            # Only JSON columns hold dicts; SQL expressions (attempt + 1) pass through untouched.
            changes |= {k: json_safe(v) if isinstance(v, dict) else v for k, v in (values or {}).items()}
            if to == JobStatus.RUNNING:
                changes["started_at"] = func.coalesce(Job.started_at, now)
            if to in TERMINAL:
                changes["finished_at"] = now
                changes["lease_token"] = None
            stmt = update(Job).where(Job.id == job_id, Job.status == current)
            if lease_token is not None:
                stmt = stmt.where(Job.lease_token == lease_token)
            result = self.session.execute(stmt.values(**changes))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                self.session.add(
                    JobEvent(job_id=job_id, at=now, from_status=current, to_status=to, reason=reason)
                )
                self.session.flush()
                return JobStatus(current)
            if lease_token is not None:
                return None
        return None

    def note(self, job_id: str, *, reason: str) -> None:
        """Add an event that changes no status (which engine ran, how trials were grouped)."""
        current = self.session.scalar(select(Job.status).where(Job.id == job_id))
        if current is None:
            raise NotFound("job_not_found", f"job '{job_id}' does not exist")
        self.session.add(
            JobEvent(job_id=job_id, at=utcnow(), from_status=current, to_status=current, reason=reason)
        )
        self.session.flush()

    def claim(self, job_id: str, token: str, *, worker: str, takeover: Takeover) -> ClaimOutcome:
        """Take a queued job with a lease, or a running one whose holder is lost (see ``Takeover``)."""
        row = self.session.execute(
            select(Job.status, Job.lease_token, Job.heartbeat_at, Job.worker).where(Job.id == job_id)
        ).one_or_none()
        if row is None:
            raise NotFound("job_not_found", f"job '{job_id}' does not exist")
        lease = {"lease_token": token, "worker": worker, "heartbeat_at": utcnow(), "attempt": Job.attempt + 1}
        return _claim(
            row,
            takeover,
            worker,
            lambda reason, held_by: (
                self.transition(job_id, JobStatus.RUNNING, reason=reason, lease_token=held_by, values=lease)
                is not None
            ),
        )

    def heartbeat(self, job_id: str, token: str) -> JobStatus | None:
        """Renew the lease; returns the current status, or None if the lease is lost."""
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_token == token)
            .values(heartbeat_at=utcnow())
            .returning(Job.status)
        )
        status = result.scalar_one_or_none()
        return JobStatus(status) if status else None

    def set_progress(self, job_id: str, **progress: int) -> None:
        """Update progress counters (epoch, epochs, trials_done, trials_total)."""
        self.session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **progress))

    def set_result(self, job_id: str, *, best: dict[str, Any]) -> None:
        """Record the best trial and model on the job."""
        self.session.execute(update(Job).where(Job.id == job_id).values(best=json_safe(best)))

    def mark_dispatched(self, job_id: str) -> None:
        """Remember that the job's message reached the broker."""
        self.session.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))

    def stale_running(self, *, lease_timeout: timedelta) -> list[Job]:
        """Running or cancelling jobs whose worker stopped renewing its lease."""
        cutoff = utcnow() - lease_timeout
        # A search has no single lease holder: its trials carry their own leases.
        stmt = select(Job).where(
            Job.status.in_([JobStatus.RUNNING, JobStatus.CANCELLING]),
            Job.heartbeat_at < cutoff,
            Job.kind != "search",
        )
        return list(self.session.scalars(stmt))

    def save_search_state(self, job_id: str, state: dict[str, Any], *, version: int, **progress: Any) -> bool:
        """Store the oracle's state if nobody else stepped the search since ``version`` was read."""
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.search_version == version)
            .values(
                search_state=json_safe(state), search_version=version + 1, updated_at=utcnow(), **progress
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def touch(self, job_id: str) -> None:
        """Renew a search job's heartbeat (its trials, not one worker, keep it alive)."""
        self.session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow()))

    def running_searches(self) -> list[str]:
        """Ids of search jobs that are running or being cancelled."""
        stmt = select(Job.id).where(
            Job.kind == "search", Job.status.in_([JobStatus.RUNNING, JobStatus.CANCELLING])
        )
        return list(self.session.scalars(stmt))

    def needing_dispatch(self, *, older_than: timedelta) -> list[str]:
        """Queued jobs whose message never reached the broker or may have been lost there."""
        rows = self.session.execute(
            select(Job.id, Job.created_at, Job.dispatched_at).where(Job.status == JobStatus.QUEUED)
        ).all()
        return [r.id for r in rows if resend_due(r.created_at, r.dispatched_at, older_than)]


class TrialStore:
    """Trials of a job, their status machine and history, and their per-epoch metrics."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def transition(
        self,
        trial_id: str,
        to: TrialStatus,
        *,
        reason: str,
        only_from: Iterable[TrialStatus] | None = None,
        lease_token: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> TrialStatus | None:
        """The one place a trial's status changes: compare-and-swap plus its event; the old status.

        None when the current status does not allow ``to`` or ``lease_token`` no longer holds the
        trial: a stale executor (paused, or taken over) can change nothing.
        """
        current = self.session.scalar(select(Trial.status).where(Trial.id == trial_id))
        if current is None:
            raise NotFound("trial_not_found", f"trial '{trial_id}' does not exist")
        allowed = TRIAL_ALLOWED_FROM[to] & frozenset(only_from or TRIAL_ALLOWED_FROM[to])
        if TrialStatus(current) not in allowed:
            return None
        now = utcnow()
        changes: dict[str, Any] = {"status": to}
        changes |= {k: json_safe(v) if isinstance(v, dict) else v for k, v in (values or {}).items()}
        if to in TRIAL_TERMINAL:
            changes |= {"finished_at": now, "lease_token": None}
        if to == TrialStatus.QUEUED:
            changes |= {"lease_token": None, "worker": None, "heartbeat_at": None, "dispatched_at": None}
        stmt = update(Trial).where(Trial.id == trial_id, Trial.status == current)
        if lease_token is not None:
            stmt = stmt.where(Trial.lease_token == lease_token)
        if self.session.execute(stmt.values(**changes)).rowcount != 1:  # type: ignore[attr-defined]
            return None
        self.session.add(
            TrialEvent(trial_id=trial_id, at=now, from_status=current, to_status=to, reason=reason)
        )
        self.session.flush()
        return TrialStatus(current)

    def finish(
        self,
        trial_id: str,
        status: TrialStatus,
        *,
        reason: str,
        lease_token: str | None = None,
        score: float | None = None,
        metrics: dict[str, Any] | None = None,
        diagnostics: dict[str, Any] | None = None,
        error: str | None = None,
        model_key: str | None = None,
    ) -> bool:
        """Close a trial with its outcome; False if it was no longer this holder's to close."""
        values = {
            "score": json_safe(score),
            "metrics": json_safe(metrics),
            "diagnostics": json_safe(diagnostics),
            "error": error,
            "model_key": model_key,
        }
        return (
            self.transition(trial_id, status, reason=reason, lease_token=lease_token, values=values)
            is not None
        )

    def end_all(self, job_id: str, *, status: TrialStatus, reason: str) -> list[str]:
        """Close every queued or running trial of a job that ended (nothing is left ``running``)."""
        open_ids = self.session.scalars(
            select(Trial.id).where(
                Trial.job_id == job_id, Trial.status.in_([TrialStatus.QUEUED, TrialStatus.RUNNING])
            )
        ).all()
        return [t for t in open_ids if self.finish(t, status, reason=reason, error=reason)]

    def start(
        self, job_id: str, number: int, *, hyperparameters: dict[str, Any], token: str, worker: str
    ) -> Trial:
        """The running trial ``number`` of a train job under this lease; a lost attempt's row is taken
        over (its epochs stay: a resume keeps those its checkpoint covers)."""
        now = utcnow()
        old = self.session.scalar(select(Trial).where(Trial.job_id == job_id, Trial.number == number))
        lease = {"lease_token": token, "worker": worker, "heartbeat_at": now, "attempt": Trial.attempt + 1}
        if old is not None:
            self.session.execute(
                update(Trial).where(Trial.id == old.id).values(finished_at=None, error=None, **lease)
            )
            if self.transition(old.id, TrialStatus.RUNNING, reason=f"attempt by {worker}") is None:
                raise Conflict("trial_not_resumable", f"trial {old.id} is {old.status}")
            return self.get(old.id)
        trial = Trial(
            job_id=job_id,
            number=number,
            status=TrialStatus.RUNNING,
            hyperparameters=hyperparameters,
            worker=worker,
            lease_token=token,
            heartbeat_at=now,
            attempt=1,
            started_at=now,
        )
        self.session.add(trial)
        self.session.flush()
        self.session.add(
            TrialEvent(
                trial_id=trial.id,
                at=now,
                from_status=None,
                to_status=trial.status,
                reason=f"started by {worker}",
            )
        )
        self.session.flush()
        return trial

    def add_queued(self, job_id: str, number: int, *, hyperparameters: dict[str, Any]) -> Trial:
        """Insert a proposed trial waiting for a worker; a taken number raises IntegrityError."""
        now = utcnow()
        trial = Trial(
            job_id=job_id,
            number=number,
            status=TrialStatus.QUEUED,
            hyperparameters=json_safe(hyperparameters),
            started_at=now,
            dispatched_at=now,  # its message is sent right after this commits
        )
        self.session.add(trial)
        self.session.flush()
        self.session.add(
            TrialEvent(
                trial_id=trial.id,
                at=now,
                from_status=None,
                to_status=trial.status,
                reason="proposed by the oracle",
            )
        )
        self.session.flush()
        return trial

    def get(self, trial_id: str) -> Trial:
        """A trial by id."""
        trial = self.session.get(Trial, trial_id, populate_existing=True)
        if trial is None:
            raise NotFound("trial_not_found", f"trial '{trial_id}' does not exist")
        return trial

    def events(self, trial_id: str) -> Sequence[TrialEvent]:
        """The trial's status history, oldest first."""
        return self.session.scalars(
            select(TrialEvent).where(TrialEvent.trial_id == trial_id).order_by(TrialEvent.id)
        ).all()

    def claim(self, trial_id: str, token: str, *, worker: str, takeover: Takeover) -> ClaimOutcome:
        """Start a queued trial under a lease, or take over a running one whose holder is lost."""
        row = self.session.execute(
            select(Trial.status, Trial.lease_token, Trial.heartbeat_at, Trial.worker).where(
                Trial.id == trial_id
            )
        ).one_or_none()
        if row is None:
            raise NotFound("trial_not_found", f"trial '{trial_id}' does not exist")
        lease = {
            "lease_token": token,
            "worker": worker,
            "heartbeat_at": utcnow(),
            "attempt": Trial.attempt + 1,
        }
        return _claim(
            row,
            takeover,
            worker,
            lambda reason, held_by: (
                self.transition(
                    trial_id, TrialStatus.RUNNING, reason=reason, lease_token=held_by, values=lease
                )
                is not None
            ),
        )

    def heartbeat(self, trial_id: str, token: str) -> bool:
        """Renew a running trial's lease; False if this holder lost it."""
        result = self.session.execute(
            update(Trial)
            .where(Trial.id == trial_id, Trial.lease_token == token, Trial.status == TrialStatus.RUNNING)
            .values(heartbeat_at=utcnow())
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def stale_running(self, *, lease_timeout: timedelta) -> list[Trial]:
        """Search trials still running whose worker stopped renewing their lease (a train job's one
        trial goes with its job, which the reaper handles)."""
        cutoff = utcnow() - lease_timeout
        stmt = (
            select(Trial)
            .join(Job, Job.id == Trial.job_id)
            .where(Trial.status == TrialStatus.RUNNING, Trial.heartbeat_at < cutoff, Job.kind == "search")
        )
        return list(self.session.scalars(stmt))

    def needing_dispatch(self, *, older_than: timedelta) -> list[str]:
        """Queued trials of live searches whose message may have been lost."""
        rows = self.session.execute(
            select(Trial.id, Trial.started_at, Trial.dispatched_at)
            .join(Job, Job.id == Trial.job_id)
            .where(Trial.status == TrialStatus.QUEUED, Job.status == JobStatus.RUNNING, Job.kind == "search")
        ).all()
        return [r.id for r in rows if resend_due(r.started_at, r.dispatched_at, older_than)]

    def mark_dispatched(self, trial_id: str) -> None:
        """Remember that the trial's message reached the broker."""
        self.session.execute(update(Trial).where(Trial.id == trial_id).values(dispatched_at=utcnow()))

    def drop_epochs_after(self, trial_id: str, epoch: int, *, execution: int = 0) -> int:
        """Forget epochs past a checkpoint (a resumed run records them again); how many went."""
        result = self.session.execute(
            delete(EpochMetric).where(
                EpochMetric.trial_id == trial_id,
                EpochMetric.execution == execution,
                EpochMetric.epoch > epoch,
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def note(self, trial_id: str, *, reason: str) -> None:
        """An event that changes no status (a resume from a checkpoint)."""
        current = self.session.scalar(select(Trial.status).where(Trial.id == trial_id))
        event = TrialEvent(
            trial_id=trial_id, at=utcnow(), from_status=current, to_status=current, reason=reason
        )
        self.session.add(event)
        self.session.flush()

    def record_epochs(
        self,
        trial_id: str,
        epochs: list[tuple[int, dict[str, Any], dict[str, Any]]],
        *,
        lease_token: str,
        execution: int = 0,
    ) -> bool:
        """Store epochs' metrics and gradient norms ((epoch, values, grad_norms) each) and renew the lease,
        in one flush; False (nothing stored) if this holder lost the trial."""
        if not self.heartbeat(trial_id, lease_token):
            return False
        # Epochs a lost attempt recorded past its checkpoint are replaced, never duplicated.
        self.drop_epochs_after(trial_id, min(e for e, _, _ in epochs) - 1, execution=execution)
        now = utcnow()
        self.session.add_all(
            EpochMetric(
                trial_id=trial_id,
                execution=execution,
                epoch=epoch,
                values=json_safe(values),
                grad_norms=json_safe(grad_norms),
                at=now,
            )
            for epoch, values, grad_norms in epochs
        )
        self.session.flush()
        return True

    def _tenants_job(self, job_id: str, tenant_id: str | None) -> Any:
        """A filter for a job's rows; with ``tenant_id``, the job must be the tenant's (404 otherwise)."""
        if tenant_id is None:
            return Trial.job_id == job_id
        JobStore(self.session).get(tenant_id, job_id)
        owned = select(Job.id).where(Job.id == job_id, Job.tenant_id == tenant_id)
        return Trial.job_id.in_(owned)  # the read itself carries the tenant, not only the check before it

    def for_job(self, job_id: str, *, tenant_id: str | None = None) -> Sequence[Trial]:
        """A job's trials in order (the tenant's job only, when ``tenant_id`` is given)."""
        stmt = select(Trial).where(self._tenants_job(job_id, tenant_id)).order_by(Trial.number)
        return self.session.scalars(stmt).all()

    def epochs(
        self, job_id: str, *, tenant_id: str | None = None, trial_number: int | None = None
    ) -> Sequence[tuple[int, EpochMetric]]:
        """Per-epoch metrics of a job's trials, as (trial number, row)."""
        stmt = (
            select(Trial.number, EpochMetric)
            .join(EpochMetric, EpochMetric.trial_id == Trial.id)
            .where(self._tenants_job(job_id, tenant_id))
            .order_by(Trial.number, EpochMetric.execution, EpochMetric.epoch)
        )
        if trial_number is not None:
            stmt = stmt.where(Trial.number == trial_number)
        return [(number, row) for number, row in self.session.execute(stmt).tuples()]


class ModelStore:
    """Saved models."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, model: Model) -> Model:
        """Insert a model row."""
        self.session.add(model)
        self.session.flush()
        return model

    def get(self, tenant_id: str, model_id: str) -> Model:
        """The tenant's model, or ``model_not_found``."""
        model = self.session.scalar(select(Model).where(Model.id == model_id, Model.tenant_id == tenant_id))
        if model is None:
            raise NotFound("model_not_found", f"model '{model_id}' does not exist")
        return model
