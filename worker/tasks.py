"""Celery tasks: thin shells that claim a job, run it, record the outcome. No TensorFlow at import."""

from __future__ import annotations

import os
import secrets
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from celery.exceptions import SoftTimeLimitExceeded

from models.db import session_scope
from models.errors import DomainError
from models.spec import JobSpec
from models.status import JobKind, JobStatus, TrialStatus
from models.store import DatasetStore, JobStore, TrialStore
from worker.app import app
from worker.finish import finish_cancelled, finish_failed, finish_succeeded
from worker.protocol import REAP_JOBS, RUN_JOB, run_job_args
from worker.recorder import Recorder
from worker.runtime import Runtime, runtime
from worker.training.reporting import TrainingFailed
from worker.trial_tasks import advance, nudge, run_trial

log = structlog.get_logger(__name__)


def _load(rt: Runtime, job_id: str) -> tuple[JobSpec, str, Path, bool]:
    with session_scope(rt.sessions) as session:
        job = JobStore(session).get_any(job_id)
        dataset = DatasetStore(session).get_any(job.dataset_id)
        spec = JobSpec.model_validate(job.spec)
        return spec, job.target, rt.settings.data_dir / dataset.storage_key, dataset.has_header


@app.task(name=RUN_JOB, acks_late=True)
def run_job(job_id: str) -> None:
    """Claim the job (a duplicate delivery exits here), train, record, finish."""
    rt = runtime()
    token = secrets.token_hex(16)
    with session_scope(rt.sessions) as session:
        jobs = JobStore(session)
        if not jobs.claim(job_id, token, worker=rt.worker_name):
            log.info("job_not_claimed", job_id=job_id)
            return
        kind = jobs.get_any(job_id).kind
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
        log.exception("job_crashed", job_id=job_id)
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
    model_id = f"mdl_{secrets.token_hex(12)}"
    model_path = rt.settings.data_dir / "models" / f"{model_id}.keras"
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
        )
    if result.cancelled or recorder.lease_lost:
        finish_cancelled(rt, recorder, epochs_run=result.epochs_run)
        return
    finish_succeeded(rt, recorder, result=result, model_id=model_id, model_path=model_path)


def _redispatch(job_ids: list[str]) -> None:
    for job_id in job_ids:
        run_job.apply_async(args=run_job_args(job_id), queue=runtime().settings.queue)
        with session_scope(runtime().sessions) as session:
            JobStore(session).mark_dispatched(job_id)


def _reap_trials(trials: TrialStore, lease_timeout_s: int, max_attempts: int) -> list[str]:
    """Requeue search trials whose worker died (up to max_attempts), fail them after."""
    requeued = []
    for trial in trials.stale_running(lease_timeout=timedelta(seconds=lease_timeout_s)):
        if trial.attempt >= max_attempts:
            trials.finish(trial.id, status=TrialStatus.FAILED, error=f"worker lost {trial.attempt} times")
        elif trials.requeue(trial.id):
            requeued.append(trial.id)
    return requeued


@app.task(name=REAP_JOBS, acks_late=False)
def reap_jobs() -> dict[str, Any]:
    """Requeue or fail jobs whose worker died; re-send jobs whose message never arrived."""
    rt = runtime()
    settings = rt.settings
    requeued: list[str] = []
    outcome: dict[str, list[str]] = {"requeued": requeued, "failed": [], "cancelled": []}
    with session_scope(rt.sessions) as session:
        jobs = JobStore(session)
        for job in jobs.stale_running(lease_timeout=timedelta(seconds=settings.lease_timeout_s)):
            if job.status == JobStatus.CANCELLING:
                if jobs.transition(job.id, JobStatus.CANCELLED, reason="worker lost while cancelling"):
                    outcome["cancelled"].append(job.id)
            elif job.attempt >= settings.max_attempts:
                error = {
                    "code": "worker_lost",
                    "message": f"the worker running this job was lost {job.attempt} times; giving up",
                }
                if jobs.transition(job.id, JobStatus.FAILED, reason="worker lost", values={"error": error}):
                    outcome["failed"].append(job.id)
            elif jobs.transition(
                job.id,
                JobStatus.QUEUED,
                reason="lease expired: worker lost",
                values={"lease_token": None, "dispatched_at": None},
            ):
                requeued.append(job.id)
        pending = jobs.needing_dispatch(
            older_than=timedelta(seconds=settings.redispatch_after_s),
            redeliver_after=timedelta(seconds=settings.job_hard_time_limit_s + 3600),
        )
        lost_trials = _reap_trials(TrialStore(session), settings.lease_timeout_s, settings.max_attempts)
        searches = jobs.running_searches()
    _redispatch(sorted(set(requeued) | set(pending)))
    for trial_id in lost_trials:
        run_trial.apply_async(args=[trial_id], queue=settings.queue)
    # A step is idempotent: nudging every live search guarantees progress if a message was lost.
    for job_id in searches:
        nudge(rt, job_id)
    outcome["trials_requeued"] = lost_trials
    if any(outcome.values()) or pending:
        log.info("reaped", pid=os.getpid(), **outcome, redispatched=pending)
    return outcome
