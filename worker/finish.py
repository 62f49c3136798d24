"""Closing a job: the three endings, each one transaction guarded by the lease."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from models.db import session_scope
from models.status import JobStatus, TrialStatus
from models.store import JobStore, ModelStore, TrialStore
from models.tables import Model
from worker.recorder import Recorder
from worker.runtime import Runtime

if TYPE_CHECKING:
    from worker.training.train import TrainResult

log = structlog.get_logger(__name__)


def finish_failed(rt: Runtime, recorder: Recorder, error: dict[str, Any]) -> None:
    """Mark the trial and the job failed with ``error``."""
    with session_scope(rt.sessions) as session:
        if recorder.trial_id:
            TrialStore(session).finish(
                recorder.trial_id,
                status=TrialStatus.FAILED,
                error=error["message"],
                diagnostics=(error.get("details") or {}).get("diagnostics"),
            )
        moved = JobStore(session).transition(
            recorder.job_id,
            JobStatus.FAILED,
            reason=error["code"],
            lease_token=recorder.token,
            values={"error": error},
        )
    if moved is None:
        log.warning("fail_not_recorded_lease_lost", job_id=recorder.job_id)


def finish_cancelled(rt: Runtime, recorder: Recorder, *, epochs_run: int) -> None:
    """Mark the trial stopped and the job cancelled."""
    with session_scope(rt.sessions) as session:
        if recorder.trial_id:
            TrialStore(session).finish(recorder.trial_id, status=TrialStatus.STOPPED)
        JobStore(session).transition(
            recorder.job_id,
            JobStatus.CANCELLED,
            reason=f"cancelled after {epochs_run} epoch(s)",
            lease_token=recorder.token,
        )


def finish_succeeded(
    rt: Runtime, recorder: Recorder, *, result: TrainResult, model_id: str, model_path: Path
) -> None:
    """Register the model, close the trial and move the job to succeeded (or cancelled if asked)."""
    assert recorder.trial_id is not None and result.sha256 is not None
    storage_key = f"models/{model_id}.keras"
    objective = "val_loss"
    score = result.metrics.get(objective)
    with session_scope(rt.sessions) as session:
        jobs = JobStore(session)
        job = jobs.get_any(recorder.job_id)
        ModelStore(session).add(
            Model(
                id=model_id,
                tenant_id=job.tenant_id,
                job_id=job.id,
                trial_id=recorder.trial_id,
                task=result.task,
                target=job.target,
                input_schema=result.input_schema,
                metrics=result.metrics,
                storage_key=storage_key,
                sha256=result.sha256,
                size_bytes=model_path.stat().st_size,
            )
        )
        TrialStore(session).finish(
            recorder.trial_id,
            status=TrialStatus.COMPLETED,
            score=score,
            metrics=result.trial_metrics(),
            diagnostics=result.diagnostics,
        )
        jobs.set_progress(job.id, trials_done=1)
        jobs.set_result(
            job.id,
            best={
                "trial_id": recorder.trial_id,
                "score": score,
                "objective": objective,
                "metrics": result.metrics,
                "model_id": model_id,
            },
        )
        moved = jobs.transition(job.id, JobStatus.SUCCEEDED, reason="trained", lease_token=recorder.token)
        if moved is None:
            # Cancelled at the last moment: honour the cancel, keep the model for inspection.
            moved = jobs.transition(
                job.id, JobStatus.CANCELLED, reason="cancelled at completion", lease_token=recorder.token
            )
        if moved is None:
            session.rollback()
            model_path.unlink(missing_ok=True)
            log.warning("result_discarded_lease_lost", job_id=job.id)
            return
    log.info("job_succeeded", job_id=recorder.job_id, model_id=model_id)
