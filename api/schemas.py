"""Request and response bodies of the HTTP API; built from ORM rows, never returned as them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.input_limits import NO_NUL, check_storable
from models.status import JobKind, JobStatus
from models.tables import Dataset, EpochMetric, Job, JobEvent, Model, Trial


class ColumnOut(BaseModel):
    """One column's profile."""

    model_config = ConfigDict(extra="allow")

    name: str
    dtype: Literal["numeric", "categorical", "text"]
    missing: int
    distinct: int


class DatasetOut(BaseModel):
    """An uploaded dataset."""

    id: str
    name: str
    rows: int
    columns: list[ColumnOut]
    header: bool
    sha256: str
    size_bytes: int
    created_at: datetime

    @classmethod
    def of(cls, row: Dataset) -> DatasetOut:
        """Build from a row."""
        return cls(
            id=row.id,
            name=row.name,
            rows=row.rows,
            columns=[ColumnOut.model_validate(c) for c in row.columns],
            header=row.has_header,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            created_at=row.created_at,
        )


class DatasetPage(BaseModel):
    """A page of datasets."""

    items: list[DatasetOut]
    next_cursor: str | None


class JobCreate(BaseModel):
    """A job submission; ``spec`` may be ``{}`` (the guide's defaults)."""

    model_config = ConfigDict(extra="forbid")

    kind: JobKind
    dataset_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    target: str = Field(min_length=1, max_length=255, pattern=NO_NUL)
    spec: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, max_length=255, pattern=NO_NUL)

    @field_validator("spec", mode="before")
    @classmethod
    def _storable(cls, spec: Any) -> Any:
        """Reject what JSON columns cannot hold or a spec never needs: deep nesting, NaN and infinities."""
        check_storable(spec)
        return spec


class Progress(BaseModel):
    """How far a job has come."""

    trials_done: int
    trials_total: int
    epoch: int
    epochs: int


class JobOut(BaseModel):
    """A job as clients see it."""

    id: str
    kind: JobKind
    name: str | None
    status: JobStatus
    dataset_id: str
    target: str
    spec: dict[str, Any]
    progress: Progress
    attempt: int
    error: dict[str, Any] | None
    best: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Job) -> JobOut:
        """Build from a row."""
        return cls(
            id=row.id,
            kind=JobKind(row.kind),
            name=row.name,
            status=JobStatus(row.status),
            dataset_id=row.dataset_id,
            target=row.target,
            spec=row.spec,
            progress=Progress(
                trials_done=row.trials_done, trials_total=row.trials_total, epoch=row.epoch, epochs=row.epochs
            ),
            attempt=row.attempt,
            error=row.error,
            best=row.best,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class JobPage(BaseModel):
    """A page of jobs."""

    items: list[JobOut]
    next_cursor: str | None


class EventOut(BaseModel):
    """One status change, or a note (``from`` == ``to``) such as which engine ran and why."""

    model_config = ConfigDict(populate_by_name=True)

    at: datetime
    from_: JobStatus | None = Field(alias="from")
    to: JobStatus
    reason: str | None

    @classmethod
    def of(cls, row: JobEvent) -> EventOut:
        """Build from a row."""
        return cls(
            at=row.at,
            from_=JobStatus(row.from_status) if row.from_status else None,
            to=JobStatus(row.to_status),
            reason=row.reason,
        )


class TrialOut(BaseModel):
    """One trial of a job."""

    id: str
    number: int
    status: str
    hyperparameters: dict[str, Any]
    score: float | None
    metrics: dict[str, Any] | None
    diagnostics: dict[str, Any] | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    worker: str | None

    @classmethod
    def of(cls, row: Trial) -> TrialOut:
        """Build from a row."""
        return cls(
            id=row.id,
            number=row.number,
            status=row.status,
            hyperparameters=row.hyperparameters,
            score=row.score,
            metrics=row.metrics,
            diagnostics=row.diagnostics,
            error=row.error,
            started_at=row.started_at,
            finished_at=row.finished_at,
            worker=row.worker,
        )


class EpochOut(BaseModel):
    """One epoch: trial, epoch, loss, val_loss, the task's metrics, lr, grad_norms."""

    model_config = ConfigDict(extra="allow")

    trial: int
    execution: int = 0
    epoch: int
    grad_norms: dict[str, float]

    @classmethod
    def of(cls, trial_number: int, row: EpochMetric) -> EpochOut:
        """Build from a row, flattening the stored metric values."""
        return cls(
            trial=trial_number,
            execution=row.execution,
            epoch=row.epoch,
            grad_norms=row.grad_norms,
            **row.values,
        )


class ModelOut(BaseModel):
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
    exports: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, row: Model) -> ModelOut:
        """Build from a row."""
        return cls(
            id=row.id,
            job_id=row.job_id,
            trial_id=row.trial_id,
            task=row.task,
            target=row.target,
            input_schema=row.input_schema,
            metrics=row.metrics,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            created_at=row.created_at,
            exports={
                fmt: {k: v for k, v in made.items() if k != "storage_key"}
                for fmt, made in (row.exports or {}).items()
            },
        )


class Problem(BaseModel):
    """RFC 9457 problem details with a stable machine code."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


# As an upload's cells (TUNEFORGE_MAX_CELL_CHARS, TUNEFORGE_MAX_COLUMNS defaults): a row to predict
# holds no more than a training row could.
MAX_PREDICT_CELL_CHARS = 4096
MAX_PREDICT_COLUMNS = 1000
Cell = float | int | Annotated[str, StringConstraints(max_length=MAX_PREDICT_CELL_CHARS)] | bool | None
Row = Annotated[dict[str, Cell], Field(max_length=MAX_PREDICT_COLUMNS)]


class PredictRequest(BaseModel):
    """Raw rows, as in the CSV: numbers, strings, blanks or null for missing values."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Row] = Field(min_length=1, max_length=10_000)


class ExportRequest(BaseModel):
    """Which format to make: a TensorFlow SavedModel (``saved_model``); ``onnx`` is refused with why."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["saved_model", "onnx"]


class ExportOut(BaseModel):
    """A made format: its size and checksum, and how it compared with the model on validation rows."""

    format: str
    bytes: int
    sha256: str
    parity: dict[str, Any]
    download: str


class PredictResponse(BaseModel):
    """One prediction per row: ``{label, probabilities}`` or ``{value}``."""

    predictions: list[dict[str, Any]]
