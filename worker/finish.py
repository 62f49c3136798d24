"""The one way a job ends, for trains and searches: a fenced transition, then its model and trials.

``end_job`` changes the job's status first (compare-and-swap on status and lease); only if that
succeeds does the same transaction register the model, set ``best`` and close the job's open trials.
A cancel that lands in between wins: the job ends ``cancelled`` without a model or ``best``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session

from models.db import session_scope
from models.status import JobStatus, TrialStatus
from models.store import JobStore, ModelStore, TrialStore
from models.tables import Model
from worker.db_retry import retry_transient
from worker.files import checkpoint_file
from worker.metrics import JOBS, after_commit, count_trial
from worker.runtime import Runtime

if TYPE_CHECKING:
    from worker.recorder import Recorder
    from worker.training.train import TrainResult

log = structlog.get_logger(__name__)
# What a job's still-open trials become when the job ends this way.
OPEN_TRIALS_END = {
    JobStatus.SUCCEEDED: TrialStatus.STOPPED,
    JobStatus.CANCELLED: TrialStatus.STOPPED,
    JobStatus.FAILED: TrialStatus.FAILED,
}


@dataclass
class ModelFile:
    """A trained model on disk, ready to be registered: where it is and what its card says."""

    path: Path
    trial_id: str
    task: str
    input_schema: dict[str, Any]
    metrics: dict[str, Any]
    sha256: str


def end_job(
    rt: Runtime,
    session: Session,
    job_id: str,
    to: JobStatus,
    *,
    reason: str,
    lease_token: str | None,
    error: dict[str, Any] | None = None,
    model: ModelFile | None = None,
    best: dict[str, Any] | None = None,
) -> bool:
    """End the job in the caller's transaction; False (nothing written) if it was not ours to end."""
    jobs = JobStore(session)
    moved = jobs.transition(
        job_id, to, reason=reason, lease_token=lease_token, values={"error": error} if error else None
    )
    if moved is None and to == JobStatus.SUCCEEDED:
        # Cancelled at the last moment: honour the cancel.
        to, reason = JobStatus.CANCELLED, "cancelled at completion"
        moved = jobs.transition(job_id, to, reason=reason, lease_token=lease_token)
    if moved is None:
        return False
    kind = jobs.get_any(job_id).kind
    after_commit(session, lambda: JOBS.labels(kind, str(to)).inc())
    if to == JobStatus.SUCCEEDED and model is not None:
        model_id = _register(rt, session, job_id, model)
        jobs.set_result(job_id, best=(best or {}) | {"trial_id": model.trial_id, "model_id": model_id})
    TrialStore(session).end_all(job_id, status=OPEN_TRIALS_END[to], reason=f"job {to}: {reason}")
    log.info("job_ended", job_id=job_id, status=to, reason=reason)
    return True


def _register(rt: Runtime, session: Session, job_id: str, model: ModelFile) -> str:
    job = JobStore(session).get_any(job_id)
    model_id = f"mdl_{secrets.token_hex(12)}"
    storage_key = f"models/{model_id}.keras"
    final = rt.settings.data_dir / storage_key
    # A hard link, not a move: if this transaction rolls back, the trial's file is still there.
    os.link(model.path, final)
    _unlink_on_rollback(session, final)
    ModelStore(session).add(
        Model(
            id=model_id,
            tenant_id=job.tenant_id,
            job_id=job_id,
            trial_id=model.trial_id,
            task=model.task,
            target=job.target,
            input_schema=model.input_schema,
            metrics=model.metrics,
            storage_key=storage_key,
            sha256=model.sha256,
            size_bytes=final.stat().st_size,
        )
    )
    return model_id


def _unlink_on_rollback(session: Session, path: Path) -> None:
    def undo(_: Session) -> None:
        path.unlink(missing_ok=True)

    def keep(_: Session) -> None:
        event.remove(session, "after_rollback", undo)

    event.listen(session, "after_rollback", undo, once=True)
    event.listen(session, "after_commit", keep, once=True)


@retry_transient
def finish_failed(rt: Runtime, recorder: Recorder, error: dict[str, Any]) -> None:
    """Fail the job (and its open trials) with ``error``; its checkpoint goes (nothing will resume)."""
    if recorder.trial_id:
        checkpoint_file(rt, recorder.trial_id).unlink(missing_ok=True)
    with session_scope(rt.sessions) as session:
        if recorder.trial_id:
            TrialStore(session).finish(
                recorder.trial_id,
                TrialStatus.FAILED,
                reason=error["code"],
                lease_token=recorder.token,
                error=error["message"],
                diagnostics=(error.get("details") or {}).get("diagnostics"),
            )
            count_trial(session, "failed", recorder.started)
        ended = end_job(
            rt,
            session,
            recorder.job_id,
            JobStatus.FAILED,
            reason=error["code"],
            lease_token=recorder.token,
            error=error,
        )
    if not ended:
        log.warning("fail_not_recorded_lease_lost", job_id=recorder.job_id)


@retry_transient
def finish_cancelled(rt: Runtime, recorder: Recorder, *, epochs_run: int) -> None:
    """Cancel the job; its trial is stopped."""
    with session_scope(rt.sessions) as session:
        end_job(
            rt,
            session,
            recorder.job_id,
            JobStatus.CANCELLED,
            reason=f"cancelled after {epochs_run} epoch(s)",
            lease_token=recorder.token,
        )


@retry_transient
def finish_succeeded(
    rt: Runtime,
    recorder: Recorder,
    *,
    result: TrainResult,
    model_path: Path,
    objective: tuple[str, str],
    evaluation: dict[str, Any],
) -> None:
    """Close the trial with its outcome, register the model and succeed the job (or honour a cancel)."""
    assert recorder.trial_id is not None and result.sha256 is not None
    name, direction = objective
    score = result.metrics.get(name)
    model = ModelFile(
        model_path,
        recorder.trial_id,
        result.task,
        result.input_schema,
        result.metrics | evaluation.get("test", {}),
        result.sha256,
    )
    with session_scope(rt.sessions) as session:
        TrialStore(session).finish(
            recorder.trial_id,
            TrialStatus.COMPLETED,
            reason="trained",
            lease_token=recorder.token,
            score=score,
            metrics=result.trial_metrics(),
            diagnostics=result.diagnostics,
        )
        count_trial(session, "completed", recorder.started)
        JobStore(session).set_progress(recorder.job_id, trials_done=1)
        best = {
            "objective": name,
            "direction": direction,
            "score": score,
            "metrics": result.metrics,
            **evaluation,
        }
        ended = end_job(
            rt,
            session,
            recorder.job_id,
            JobStatus.SUCCEEDED,
            reason="trained",
            lease_token=recorder.token,
            model=model,
            best=best,
        )
        if not ended:
            session.rollback()
            log.warning("result_discarded_lease_lost", job_id=recorder.job_id)
    model_path.unlink(missing_ok=True)  # registered under its model id (a hard link), or discarded
