"""All SQL lives here. Stores flush, never commit: the caller owns the transaction."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import json_safe, utcnow
from models.errors import Conflict, InvalidInput, NotFound
from models.status import ALLOWED_FROM, TERMINAL, JobStatus, TrialStatus
from models.tables import ApiKey, Dataset, EpochMetric, Job, JobEvent, Model, Tenant, Trial

Row = TypeVar("Row", Dataset, Job)
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
        return datetime.fromisoformat(stamp), row_id
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
        """The tenant id a live key belongs to, or None."""
        return self.session.scalar(
            select(ApiKey.tenant_id).where(
                ApiKey.key_hash == hash_key(plaintext), ApiKey.revoked_at.is_(None)
            )
        )


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

    def events(self, job_id: str) -> Sequence[JobEvent]:
        """The job's status history, oldest first."""
        return self.session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()

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

    def claim(self, job_id: str, token: str, *, worker: str) -> bool:
        """Take a queued job for this worker with a lease; False if someone else has it."""
        now = utcnow()
        return (
            self.transition(
                job_id,
                JobStatus.RUNNING,
                reason=f"claimed by {worker}",
                only_from=[JobStatus.QUEUED],
                values={"lease_token": token, "heartbeat_at": now, "attempt": Job.attempt + 1},
            )
            is not None
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

    def needing_dispatch(self, *, older_than: timedelta, redeliver_after: timedelta) -> list[str]:
        """Queued jobs whose message never reached the broker or may have been lost there."""
        now = utcnow()
        stmt = select(Job.id).where(
            Job.status == JobStatus.QUEUED,
            Job.created_at < now - older_than,
            or_(Job.dispatched_at.is_(None), Job.dispatched_at < now - redeliver_after),
        )
        return list(self.session.scalars(stmt))


class TrialStore:
    """Trials of a job and their per-epoch metrics."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def start(self, job_id: str, number: int, *, hyperparameters: dict[str, Any], worker: str) -> Trial:
        """Insert a running trial, replacing a leftover of an earlier attempt."""
        old = self.session.scalar(select(Trial).where(Trial.job_id == job_id, Trial.number == number))
        if old is not None:
            self.session.delete(old)
            self.session.flush()
        trial = Trial(
            job_id=job_id,
            number=number,
            status="running",
            hyperparameters=hyperparameters,
            worker=worker,
            started_at=utcnow(),
        )
        self.session.add(trial)
        self.session.flush()
        return trial

    def add_queued(self, job_id: str, number: int, *, hyperparameters: dict[str, Any]) -> Trial:
        """Insert a proposed trial waiting for a worker; a taken number raises IntegrityError."""
        trial = Trial(
            job_id=job_id,
            number=number,
            status=TrialStatus.QUEUED,
            hyperparameters=json_safe(hyperparameters),
            started_at=utcnow(),
        )
        self.session.add(trial)
        self.session.flush()
        return trial

    def get(self, trial_id: str) -> Trial:
        """A trial by id."""
        trial = self.session.get(Trial, trial_id, populate_existing=True)
        if trial is None:
            raise NotFound("trial_not_found", f"trial '{trial_id}' does not exist")
        return trial

    def claim(self, trial_id: str, *, worker: str) -> bool:
        """Start a queued trial on this worker (a duplicate delivery gets False)."""
        now = utcnow()
        result = self.session.execute(
            update(Trial)
            .where(Trial.id == trial_id, Trial.status == TrialStatus.QUEUED)
            .values(
                status=TrialStatus.RUNNING,
                worker=worker,
                started_at=now,
                heartbeat_at=now,
                attempt=Trial.attempt + 1,
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def heartbeat(self, trial_id: str) -> None:
        """Renew a running trial's lease."""
        self.session.execute(update(Trial).where(Trial.id == trial_id).values(heartbeat_at=utcnow()))

    def stale_running(self, *, lease_timeout: timedelta) -> list[Trial]:
        """Running trials whose worker stopped renewing their lease."""
        cutoff = utcnow() - lease_timeout
        stmt = select(Trial).where(Trial.status == TrialStatus.RUNNING, Trial.heartbeat_at < cutoff)
        return list(self.session.scalars(stmt))

    def requeue(self, trial_id: str) -> bool:
        """Put a lost trial back in the queue; its partial epochs are discarded."""
        self.session.execute(delete(EpochMetric).where(EpochMetric.trial_id == trial_id))
        result = self.session.execute(
            update(Trial)
            .where(Trial.id == trial_id, Trial.status == TrialStatus.RUNNING)
            .values(status=TrialStatus.QUEUED, worker=None, heartbeat_at=None)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def record_epochs(
        self,
        trial_id: str,
        epochs: list[tuple[int, dict[str, Any], dict[str, Any]]],
        *,
        execution: int = 0,
    ) -> None:
        """Store epochs' metrics and gradient norms: (epoch, values, grad_norms) each, in one flush."""
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

    def finish(
        self,
        trial_id: str,
        *,
        status: str,
        score: float | None = None,
        metrics: dict[str, Any] | None = None,
        diagnostics: dict[str, Any] | None = None,
        error: str | None = None,
        model_key: str | None = None,
        only_running: bool = False,
    ) -> bool:
        """Close a trial with its outcome (with ``only_running``, only if nobody closed it meanwhile)."""
        stmt = update(Trial).where(Trial.id == trial_id)
        if only_running:
            stmt = stmt.where(Trial.status == TrialStatus.RUNNING)
        result = self.session.execute(
            stmt.values(
                status=status,
                score=json_safe(score),
                metrics=json_safe(metrics),
                diagnostics=json_safe(diagnostics),
                error=error,
                model_key=model_key,
                finished_at=utcnow(),
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def for_job(self, job_id: str) -> Sequence[Trial]:
        """A job's trials in order."""
        return self.session.scalars(select(Trial).where(Trial.job_id == job_id).order_by(Trial.number)).all()

    def epochs(self, job_id: str, *, trial_number: int | None = None) -> Sequence[tuple[int, EpochMetric]]:
        """Per-epoch metrics of a job's trials, as (trial number, row)."""
        stmt = (
            select(Trial.number, EpochMetric)
            .join(EpochMetric, EpochMetric.trial_id == Trial.id)
            .where(Trial.job_id == job_id)
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
