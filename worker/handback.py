"""Handing running work back to the queue when this worker shuts down (its state is checkpointed)."""

from __future__ import annotations

import structlog

from models.db import session_scope
from models.status import JobStatus, TrialStatus
from models.store import JobStore, TrialStore
from models.tables import Job, Trial
from worker.db_retry import retry_transient
from worker.runtime import Runtime

log = structlog.get_logger(__name__)
REASON = "handed back: the worker is shutting down; resumes from its checkpoint"


@retry_transient
def _requeue_job(rt: Runtime, job_id: str, trial_id: str, token: str) -> bool:
    with session_scope(rt.sessions) as session:
        TrialStore(session).transition(
            trial_id,
            TrialStatus.QUEUED,
            reason=REASON,
            lease_token=token,
            values={"attempt": Trial.attempt - 1},
        )
        # A shutdown is not a lost worker: the attempt it claimed does not count against max_attempts.
        values = {"lease_token": None, "worker": None, "dispatched_at": None, "attempt": Job.attempt - 1}
        moved = JobStore(session).transition(
            job_id, JobStatus.QUEUED, reason=REASON, lease_token=token, values=values
        )
        return moved is not None


def hand_back_job(rt: Runtime, job_id: str, trial_id: str, token: str) -> None:
    """Put a train job back in the queue and send its message (the reaper re-sends it if that fails)."""
    from worker.tasks import run_job

    if not _requeue_job(rt, job_id, trial_id, token):
        return  # cancelled or taken over meanwhile: not ours to hand back
    try:
        run_job.apply_async(args=[job_id], queue=rt.settings.queue)
        with session_scope(rt.sessions) as session:
            JobStore(session).mark_dispatched(job_id)
    except Exception:
        log.warning("hand_back_dispatch_failed_reaper_will_resend", job_id=job_id, exc_info=True)
    log.info("job_handed_back", job_id=job_id)


@retry_transient
def _requeue_trials(rt: Runtime, trial_ids: list[str], token: str) -> list[str]:
    with session_scope(rt.sessions) as session:
        trials = TrialStore(session)
        values = {"attempt": Trial.attempt - 1}
        return [
            t
            for t in trial_ids
            if trials.transition(t, TrialStatus.QUEUED, reason=REASON, lease_token=token, values=values)
        ]


def hand_back_trials(rt: Runtime, trial_ids: list[str], token: str) -> None:
    """Put search trials back in the queue as one population (they resume together, same program)."""
    from worker.trial_tasks import run_population

    requeued = _requeue_trials(rt, trial_ids, token)
    if not requeued:
        return
    try:
        run_population.apply_async(args=[requeued], queue=rt.settings.queue)
        with session_scope(rt.sessions) as session:
            for trial_id in requeued:
                TrialStore(session).mark_dispatched(trial_id)
    except Exception:
        log.warning("hand_back_dispatch_failed_reaper_will_resend", trials=requeued, exc_info=True)
    log.info("trials_handed_back", trials=requeued)
