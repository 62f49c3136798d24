"""Celery tasks: thin shells that claim a job, run it, record the outcome. No TensorFlow at import."""

from __future__ import annotations

import secrets
import traceback
from pathlib import Path

import structlog
from celery.exceptions import SoftTimeLimitExceeded

from models.db import is_transient, session_scope
from models.errors import DomainError
from models.spec import JobSpec
from models.status import JobKind, JobStatus
from models.store import ClaimOutcome, DatasetStore, JobStore
from worker.app import app
from worker.checkpointing import open_checkpoint
from worker.db_retry import retry_transient
from worker.files import trial_files
from worker.finish import end_job, finish_cancelled, finish_failed, finish_succeeded
from worker.handback import hand_back_job
from worker.protocol import RUN_JOB
from worker.recorder import Recorder
from worker.runtime import Runtime, runtime
from worker.training.reporting import TrainingFailed
from worker.trial_tasks import advance

log = structlog.get_logger(__name__)


@retry_transient
def _load(rt: Runtime, job_id: str) -> tuple[JobSpec, str, Path, bool]:
    with session_scope(rt.sessions) as session:
        job = JobStore(session).get_any(job_id)
        dataset = DatasetStore(session).get_any(job.dataset_id)
        spec = JobSpec.model_validate(job.spec)
        return spec, job.target, rt.settings.data_dir / dataset.storage_key, dataset.has_header


@app.task(name=RUN_JOB, acks_late=True)
def run_job(job_id: str) -> None:
    """Claim the job (or take it over from a lost worker), train, record, finish; duplicates exit here."""
    rt = runtime()
    token = secrets.token_hex(16)
    with session_scope(rt.sessions) as session:
        jobs = JobStore(session)
        claimed = jobs.claim(job_id, token, worker=rt.holder, takeover=rt.takeover())
        if claimed in (ClaimOutcome.BUSY, ClaimOutcome.GONE):
            log.info("job_not_claimed", job_id=job_id, outcome=claimed)
            return
        job = jobs.get_any(job_id)
        kind, attempt = job.kind, job.attempt
        if attempt > rt.settings.max_attempts:
            # Work that kills its worker every time must end, not loop: count attempts, not deliveries.
            # Failed in the claim's own transaction, so nobody ever sees it running under this attempt.
            message = f"the job's worker was lost {attempt - 1} times; giving up"
            error = {"code": "worker_lost", "message": message}
            end_job(
                rt, session, job_id, JobStatus.FAILED, reason="worker_lost", lease_token=token, error=error
            )
            log.warning("job_given_up", job_id=job_id, attempts=attempt - 1)
            return
    structlog.contextvars.bind_contextvars(job_id=job_id, kind=kind, attempt=attempt)
    log.info("job_claimed", job_id=job_id, worker=rt.worker_name, kind=kind)
    recorder = Recorder(rt, job_id, token)
    try:
        if kind == JobKind.SEARCH:
            advance(rt, job_id)  # the coordinator's first step: trials fan out to every worker
        else:
            _train(rt, job_id, recorder)
    except SoftTimeLimitExceeded:
        finish_failed(
            rt,
            recorder,
            {
                "code": "time_limit_exceeded",
                "message": f"the job ran past {rt.settings.job_soft_time_limit_s} s",
            },
        )
    except TrainingFailed as exc:
        finish_failed(rt, recorder, {"code": exc.code, "message": str(exc), "details": exc.details})
    except DomainError as exc:
        finish_failed(rt, recorder, {"code": exc.code, "message": exc.detail, "details": {}})
    except Exception as exc:
        if is_transient(exc):
            # The database stayed away longer than the retries: the lease lapses, and the reaper (or
            # a redelivery) resumes the job from its checkpoint. Failing it would lose the work.
            log.warning("job_left_for_reaper", job_id=job_id, error=type(exc).__name__)
            return
        # One line, no locals: a traceback with locals of training data took 13 s to log.
        log.error("job_crashed", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        details = {"exception": type(exc).__name__, "traceback": traceback.format_exc(-3)}
        finish_failed(
            rt,
            recorder,
            {"code": "internal_error", "message": str(exc) or type(exc).__name__, "details": details},
        )


def _train(rt: Runtime, job_id: str, recorder: Recorder) -> None:
    from worker.training.engines import choose_engine

    spec, target, csv_path, has_header = _load(rt, job_id)
    recorder.start_trial(0, hyperparameters={}, epochs=spec.training.epochs)
    choice = choose_engine(spec)
    with session_scope(rt.sessions) as session:
        JobStore(session).note(job_id, reason=f"training on the {choice.engine} engine: {choice.reason}")
    assert recorder.trial_id is not None
    model_path = trial_files(rt, recorder.trial_id)[0]
    checkpoint = open_checkpoint(rt, job_id, recorder.trial_id, number=0)
    # The lease is renewed (and a cancel noticed) from here on, through TensorFlow's slow import.
    with recorder.heartbeat():
        # TensorFlow is imported here, inside the task's (forked child) process, never at import.
        from worker.training.train import run_training

        result = run_training(
            csv_path=csv_path,
            has_header=has_header,
            target=target,
            spec=spec,
            reporter=recorder,
            model_path=model_path,
            checkpoint=checkpoint,
        )
    if recorder.lease_lost:
        return  # another worker holds the job now (and resumes from the checkpoint): write nothing
    if result.cancelled and recorder.handing_back() and not recorder.cancel_requested:
        hand_back_job(rt, job_id, recorder.trial_id, recorder.token)  # checkpointed at the last epoch
        return
    checkpoint.discard()
    if result.cancelled:
        finish_cancelled(rt, recorder, epochs_run=result.epochs_run)
        return
    from worker.training.evaluation import closing_evaluation

    with recorder.heartbeat():
        evaluation = closing_evaluation(
            csv_path=csv_path,
            has_header=has_header,
            target=target,
            spec=spec,
            model_path=model_path,
            input_schema=result.input_schema,
        )
    stopping = spec.training.early_stopping
    objective = stopping.monitor if stopping else "val_loss"
    direction = "max" if stopping and stopping.maximize else "min"
    finish_succeeded(
        rt,
        recorder,
        result=result,
        model_path=model_path,
        objective=(objective, direction),
        evaluation=evaluation,
    )
