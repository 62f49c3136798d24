"""The reaper: requeue or end work whose worker died, re-send work whose message was lost.

It runs inside the beat process on its own timer (``start_in_beat``), not as a task on the job
queue, so a backlog of jobs can never delay or expire it.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

import structlog

from models.db import session_scope
from models.status import JobStatus, TrialStatus
from models.store import JobStore, TrialStore
from worker.runtime import Runtime, runtime

log = structlog.get_logger(__name__)


def _reap_jobs(jobs: JobStore, trials: TrialStore, rt: Runtime, outcome: dict[str, list[str]]) -> None:
    settings = rt.settings
    for job in jobs.stale_running(lease_timeout=timedelta(seconds=settings.lease_timeout_s)):
        if job.status == JobStatus.CANCELLING:
            if jobs.transition(job.id, JobStatus.CANCELLED, reason="worker lost while cancelling"):
                trials.end_all(job.id, status=TrialStatus.STOPPED, reason="job cancelled")
                outcome["cancelled"].append(job.id)
        elif job.attempt >= settings.max_attempts:
            error = {
                "code": "worker_lost",
                "message": f"the worker running this job was lost {job.attempt} times; giving up",
            }
            if jobs.transition(job.id, JobStatus.FAILED, reason="worker lost", values={"error": error}):
                trials.end_all(job.id, status=TrialStatus.FAILED, reason=error["message"])
                outcome["failed"].append(job.id)
        elif jobs.transition(
            job.id,
            JobStatus.QUEUED,
            reason="lease expired: worker lost",
            values={"lease_token": None, "dispatched_at": None},
        ):
            outcome["requeued"].append(job.id)


def _reap_trials(trials: TrialStore, rt: Runtime) -> list[list[str]]:
    """Requeue search trials whose worker died (up to max_attempts), fail them after; the requeued
    trials come back grouped as the populations that were lost, so each resumes from its checkpoints
    in the very program that wrote them."""
    settings = rt.settings
    lost: dict[tuple[str, str | None], list[str]] = {}
    for trial in trials.stale_running(lease_timeout=timedelta(seconds=settings.lease_timeout_s)):
        population = (trial.job_id, trial.lease_token)  # one lease token per population claim
        if trial.attempt >= settings.max_attempts:
            message = f"worker lost {trial.attempt} times"
            trials.finish(trial.id, TrialStatus.FAILED, reason=message, error=message)
        elif trials.transition(trial.id, TrialStatus.QUEUED, reason="lease expired: worker lost"):
            lost.setdefault(population, []).append(trial.id)
    return list(lost.values())


def reap(rt: Runtime | None = None) -> dict[str, Any]:
    """One pass; returns what it did (ids by outcome)."""
    from worker.tasks import run_job
    from worker.trial_tasks import nudge, run_population

    rt = rt or runtime()
    settings = rt.settings
    outcome: dict[str, list[str]] = {"requeued": [], "failed": [], "cancelled": []}
    resend_after = timedelta(seconds=settings.redispatch_after_s)
    with session_scope(rt.sessions) as session:
        jobs, trials = JobStore(session), TrialStore(session)
        _reap_jobs(jobs, trials, rt, outcome)
        lost_trials = _reap_trials(trials, rt)
        # Queued work whose message was never sent or may have died with the broker: a claim is
        # idempotent, so a second message costs one no-op task.
        pending_jobs = jobs.needing_dispatch(older_than=resend_after)
        pending_trials = trials.needing_dispatch(older_than=resend_after)
        searches = jobs.running_searches()
    for job_id in sorted(set(outcome["requeued"]) | set(pending_jobs)):
        run_job.apply_async(args=[job_id], queue=settings.queue)
        with session_scope(rt.sessions) as session:
            JobStore(session).mark_dispatched(job_id)
    for population in [*lost_trials, *([t] for t in pending_trials if not any(t in p for p in lost_trials))]:
        run_population.apply_async(args=[population], queue=settings.queue)
        with session_scope(rt.sessions) as session:
            for trial_id in population:
                TrialStore(session).mark_dispatched(trial_id)
    # A step is idempotent: nudging every live search guarantees progress if a message was lost.
    for job_id in searches:
        nudge(rt, job_id)
    report: dict[str, Any] = outcome | {
        "trials_requeued": lost_trials,
        "redispatched": pending_jobs,
        "trials_redispatched": pending_trials,
    }
    if any(report.values()):
        log.info("reaped", pid=os.getpid(), **report)
    return report


def _loop(interval_s: float, stop: threading.Event) -> None:
    while not stop.wait(interval_s):
        try:
            reap()
        except Exception:  # the database or broker is away: the next pass tries again
            log.warning("reap_failed", exc_info=True)


def start_in_beat(interval_s: float) -> threading.Event:
    """Run ``reap`` every ``interval_s`` in a daemon thread of this (beat) process; set the event to stop."""
    stop = threading.Event()
    threading.Thread(target=_loop, args=(interval_s, stop), name="reaper", daemon=True).start()
    return stop
