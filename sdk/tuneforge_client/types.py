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


class Ensemble(_Model):
    """The trials a search's saved model averages (``spec.evaluation.ensemble``)."""

    members: list[int]
    val: dict[str, float | None] | None = None


class Best(_Model):
    """A succeeded job's chosen model: its score, its test rows' scores and the baselines beside it.

    Fields the server did not send are None (``number`` and ``hyperparameters`` come with searches,
    ``test`` with held-out rows, ``baselines`` and ``flags`` with baselines on); keys this SDK does not
    know yet are kept in ``model_extra``. ``best["model_id"]`` and ``best.get(...)`` still work as they
    did when this was a dict.
    """

    model_id: str | None = None
    trial_id: str | None = None
    number: int | None = None
    objective: str | None = None
    direction: str | None = None
    score: float | None = None
    metrics: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None
    test_rows: int | None = None
    # A score can be null: NaN and infinities are stored as null.
    test: dict[str, float | None] | None = None
    val: dict[str, float | None] | None = None  # the saved model's own validation scores
    ensemble: Ensemble | None = None
    baselines: dict[str, dict[str, float | None]] | None = None
    flags: list[dict[str, Any]] | None = None
    evaluation_error: str | None = None

    def _sent(self) -> dict[str, Any]:
        """The keys the server sent, known or not, as the dict this used to be."""
        return self.model_dump(exclude_unset=True)

    def __getitem__(self, key: str) -> Any:
        """``best[key]``: KeyError for a key the server did not send, as with the dict."""
        return self._sent()[key]

    def __contains__(self, key: object) -> bool:
        """``key in best``: whether the server sent it."""
        return key in self._sent()

    def get(self, key: str, default: Any = None) -> Any:
        """``best.get(key)``, as with the dict."""
        return self._sent().get(key, default)


class StreamEvent(_Model):
    """One event of a job's live stream: ``status``, ``trial``, ``epoch`` or ``end``, with its id."""

    event: str
    id: str
    data: dict[str, Any]


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
    best: Best | None = None
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

    def stream(self, **options: Any) -> Any:
        """This job's live events until it ends (``Client`` only): see ``client.jobs.stream``."""
        if self._jobs is None or not hasattr(self._jobs, "stream"):
            raise RuntimeError("this Job is not attached to a synchronous client")
        return self._jobs.stream(self.id, **options)


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


class Export(_Model):
    """A model made in another format: its size, checksum and parity with the ``.keras`` file."""

    format: str
    bytes: int
    sha256: str
    parity: dict[str, Any]
    download: str


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
    # Other formats made with POST /v1/models/{id}/export: {format: {bytes, sha256, parity}}.
    exports: dict[str, Any] = {}


WebhookEvent = Literal[
    "*",
    "job.queued",
    "job.running",
    "job.cancelling",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "trial.completed",
]


class Webhook(_Model):
    """An endpoint subscribed to events."""

    id: str
    url: str
    events: list[str]
    description: str | None = None
    created_at: datetime


class WebhookCreated(Webhook):
    """A new endpoint and its signing secret (``whsec_...``), which is not shown again."""

    secret: str


class DeliveryAttempt(_Model):
    """One attempt of a delivery: the receiver's status code, or why there was none."""

    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


class Delivery(_Model):
    """One event for one endpoint, from the delivery log."""

    id: str
    endpoint_id: str
    event: str
    job_id: str | None = None
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    created_at: datetime
    history: list[DeliveryAttempt]
    payload: dict[str, Any]
