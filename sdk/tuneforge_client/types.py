"""Typed views of the server's answers (extra fields are kept, so newer servers never break us)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Column(_Model):
    """One column's profile."""

    name: str
    dtype: Literal["numeric", "categorical", "text"]
    missing: int
    distinct: int


class Dataset(_Model):
    """An uploaded CSV."""

    id: str
    name: str
    rows: int
    columns: list[Column]
    header: bool
    sha256: str
    size_bytes: int
    created_at: datetime


class Progress(_Model):
    """How far a job has come."""

    trials_done: int
    trials_total: int
    epoch: int
    epochs: int


JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class Job(_Model):
    """A train or search job."""

    id: str
    kind: Literal["train", "search"]
    name: str | None = None
    status: JobStatus
    dataset_id: str
    target: str
    spec: dict[str, Any]
    progress: Progress
    attempt: int
    error: dict[str, Any] | None = None
    best: dict[str, Any] | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    _jobs: Any = PrivateAttr(default=None)

    @property
    def done(self) -> bool:
        """Whether the job reached a terminal status."""
        return self.status in TERMINAL

    def _bind(self, jobs: Any) -> Job:
        self._jobs = jobs
        return self

    def wait(self, **options: Any) -> Any:
        """Wait for this job to end (a coroutine when it came from an AsyncClient)."""
        if self._jobs is None:
            raise RuntimeError("this Job is not attached to a client")
        return self._jobs.wait(self.id, **options)


class Event(_Model):
    """One status change."""

    at: datetime
    from_: JobStatus | None = Field(default=None, alias="from")
    to: JobStatus
    reason: str | None = None


class Trial(_Model):
    """One trial of a job."""

    id: str
    number: int
    status: str
    hyperparameters: dict[str, Any]
    score: float | None = None
    metrics: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    error: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    worker: str | None = None


class EpochMetrics(_Model):
    """One epoch of one trial: loss, val_loss, the task's metrics, lr, grad_norms (extra fields)."""

    trial: int
    execution: int = 0
    epoch: int
    grad_norms: dict[str, float]


class Model(_Model):
    """A trained model's card."""

    id: str
    job_id: str
    trial_id: str
    task: str
    target: str
    input_schema: dict[str, Any]
    metrics: dict[str, Any]
    format: Literal["keras"] = "keras"
    sha256: str
    size_bytes: int
    created_at: datetime
