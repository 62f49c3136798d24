"""Use-cases: one transaction each; files land before the commit, messages go after it."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.queue import JobQueue
from api.schemas import JobCreate
from models import quotas
from models.base import new_id
from models.default_search import searches_nothing, with_default_space, with_default_training
from models.errors import Conflict, FieldError, InvalidInput, NotFound
from models.settings import Settings
from models.spec import resolve_spec, stored_spec
from models.status import TERMINAL, JobKind, JobStatus
from models.store import DatasetStore, JobStore, ModelStore
from models.tables import Dataset, Job
from models.tabular import HeaderMode, TableLimits, parse_csv

log = structlog.get_logger(__name__)


def upload_dataset(
    session: Session, settings: Settings, *, tenant_id: str, raw: bytes, name: str, header: HeaderMode
) -> Dataset:
    """Validate and profile a CSV, store it under a generated id, and record it."""
    limits = TableLimits(settings.max_rows, settings.max_columns, settings.max_cell_chars)
    table = parse_csv(raw, header=header, limits=limits)
    dataset_id = new_id("ds")
    storage_key = f"datasets/{dataset_id}.csv"
    final = settings.data_dir / storage_key
    partial = settings.data_dir / "tmp" / f"{dataset_id}.partial"
    partial.parent.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        quotas.lock_tenant(session, tenant_id)
        quotas.check_stored_bytes(session, tenant_id, len(raw), settings.max_stored_bytes_per_tenant)
        dataset = DatasetStore(session).add(
            Dataset(
                id=dataset_id,
                tenant_id=tenant_id,
                name=name,
                storage_key=storage_key,
                has_header=table.has_header,
                rows=len(table.frame),
                columns=table.columns,
                sha256=hashlib.sha256(raw).hexdigest(),
                size_bytes=len(raw),
            )
        )
        os.replace(partial, final)
        session.commit()
    except BaseException:
        session.rollback()
        partial.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise
    return dataset


def delete_dataset(session: Session, settings: Settings, *, tenant_id: str, dataset_id: str) -> None:
    """Delete a dataset no active job uses: the row is kept for history, the bytes are removed."""
    dataset = DatasetStore(session).mark_deleted(tenant_id, dataset_id)
    session.commit()
    (settings.data_dir / dataset.storage_key).unlink(missing_ok=True)


def _request_hash(body: JobCreate) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _replay(existing: Job, request_hash: str) -> Job:
    if existing.request_hash != request_hash:
        raise Conflict("idempotency_key_reused", "this Idempotency-Key was used for a different request")
    return existing


def submit_job(
    session: Session,
    queue: JobQueue,
    settings: Settings,
    *,
    tenant_id: str,
    body: JobCreate,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """Validate, store a queued job, commit, then enqueue; returns (job, newly created)."""
    request_hash = _request_hash(body)
    jobs = JobStore(session)
    if idempotency_key:
        existing = jobs.by_idempotency_key(tenant_id, idempotency_key)
        if existing is not None:
            return _replay(existing, request_hash), False
    try:
        dataset = DatasetStore(session).get(tenant_id, body.dataset_id)
    except NotFound as exc:
        raise InvalidInput(
            exc.code, exc.detail, [FieldError(("body", "dataset_id"), "unknown dataset")]
        ) from exc
    raw = body.spec
    if body.kind == JobKind.SEARCH and searches_nothing(raw):
        raw = with_default_space(raw, dataset.rows)  # "{}" searches a space suited to the data
    elif body.kind == JobKind.TRAIN:
        raw = with_default_training(raw, dataset.rows)  # small data: enough epochs to fit
    spec = resolve_spec(
        raw,
        kind=body.kind,
        target=body.target,
        columns=dataset.columns,
        rows=dataset.rows,
        max_flops=settings.max_job_flops,
    )
    job = Job(
        tenant_id=tenant_id,
        kind=body.kind,
        name=body.name,
        dataset_id=dataset.id,
        target=body.target,
        spec=stored_spec(raw, spec, kind=body.kind),
        trials_total=spec.search.max_trials if spec.search else 1,
        epochs=spec.training.epochs,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    try:
        quotas.lock_tenant(session, tenant_id)
        quotas.check_active_jobs(session, tenant_id, settings.max_active_jobs_per_tenant)
        jobs.add(job)
        session.commit()
    except (Conflict, IntegrityError):
        # A concurrent retry with the same key won the race: answer with its job.
        session.rollback()
        existing = jobs.by_idempotency_key(tenant_id, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, request_hash), False
    dispatch(session, queue, job.id)
    return job, True


def dispatch(session: Session, queue: JobQueue, job_id: str) -> None:
    """Send the job's message after its row is committed; on failure the reaper re-sends it."""
    try:
        queue.send_run_job(job_id)
    except Exception:
        log.warning("dispatch_failed_reaper_will_retry", job_id=job_id, exc_info=True)
        return
    JobStore(session).mark_dispatched(job_id)
    session.commit()


def cancel_job(session: Session, *, tenant_id: str, job_id: str) -> Job:
    """Cancel a queued job now, or ask the worker running it to stop."""
    jobs = JobStore(session)
    job = jobs.get(tenant_id, job_id)
    status = JobStatus(job.status)
    if status == JobStatus.CANCELLED or status == JobStatus.CANCELLING:
        return job
    if status in TERMINAL:
        raise Conflict("job_finished", f"job '{job_id}' already finished as {status}")
    for target in (JobStatus.CANCELLED, JobStatus.CANCELLING):
        if jobs.transition(job_id, target, reason="cancel requested"):
            break
    session.commit()
    session.refresh(job)
    return job


def model_path(settings: Settings, storage_key: str) -> Path:
    """Where a stored object lives on disk."""
    return settings.data_dir / storage_key


def export_model(
    session: Session, queue: JobQueue, *, tenant_id: str, model_id: str, fmt: str
) -> dict[str, Any]:
    """Have a worker make ``fmt`` of the model, checked on its job's validation rows; record it."""
    model = ModelStore(session).get(tenant_id, model_id)
    categorical = [
        f["column"] for f in model.input_schema.get("inputs", []) if f.get("dtype") == "categorical"
    ]
    if fmt == "onnx" and categorical:
        raise InvalidInput(
            "format_unavailable",
            f"ONNX cannot hold this model: its categorical columns ({', '.join(categorical)}) are looked up "
            "in string tables, which the ONNX converter does not translate; use saved_model",
            [FieldError(("body", "format"), "not possible for a model with categorical columns")],
        )
    job = JobStore(session).get(tenant_id, model.job_id)
    dataset = DatasetStore(session).get_any(job.dataset_id)
    if dataset.deleted_at is not None:
        raise Conflict(
            "dataset_deleted",
            f"dataset '{dataset.id}' was deleted: the export is checked on its validation rows",
        )
    data = {
        "dataset_key": dataset.storage_key,
        "has_header": dataset.has_header,
        "target": job.target,
        "spec": job.spec,
        "kind": job.kind,
    }
    storage_key, sha256, input_schema = model.storage_key, model.sha256, model.input_schema
    session.commit()  # no connection held while a worker exports (seconds)
    found = queue.export(
        storage_key=storage_key, sha256=sha256, input_schema=input_schema, fmt=fmt, data=data
    )
    model = ModelStore(session).get(tenant_id, model_id)
    model.exports = {**(model.exports or {}), fmt: found}
    session.commit()
    return found


def predict(
    session: Session, queue: JobQueue, *, tenant_id: str, model_id: str, rows: list[dict[str, Any]]
) -> list[Any]:
    """Check rows against the model's input schema, then have a prediction worker run the file."""
    model = ModelStore(session).get(tenant_id, model_id)
    known = {field["column"] for field in model.input_schema["inputs"]}
    unknown = sorted({column for row in rows for column in row} - known - {model.target})
    if unknown:
        raise InvalidInput(
            "unknown_column",
            "rows name columns the model does not take: "
            + ", ".join(unknown)
            + "; it takes: "
            + ", ".join(sorted(known)),
            [FieldError(("body", "rows"), f"unknown column '{name}'") for name in unknown],
        )
    bad = [
        i
        for i, row in enumerate(rows)
        if any(isinstance(v, float) and not math.isfinite(v) for v in row.values())
    ]
    if bad:
        raise InvalidInput(
            "non_finite_input",
            f"rows {bad[:10]} hold NaN or an infinity; send a blank or null for a missing value",
            [FieldError(("body", "rows", i), "non-finite number") for i in bad[:10]],
        )
    predictions = queue.predict(
        storage_key=model.storage_key, sha256=model.sha256, input_schema=model.input_schema, rows=rows
    )
    overflowed = [i for i, p in enumerate(predictions) if isinstance(p, dict) and "error" in p]
    if overflowed:
        raise InvalidInput(
            "non_finite_output",
            f"the model's output is not finite for rows {overflowed[:10]}: their inputs are far outside"
            " what it was trained on",
            [FieldError(("body", "rows", i), "non-finite model output") for i in overflowed[:10]],
        )
    return predictions
