"""The only bridge from training to the database: epochs, heartbeats, cancellation, results."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy.orm import Session

from models.db import session_scope
from models.status import JobStatus, TrialStatus
from models.store import JobStore, TrialStore
from worker.runtime import Runtime

log = structlog.get_logger(__name__)


class Recorder:
    """Records one trial of one job under the lease ``token``; implements training's Reporter."""

    def __init__(self, rt: Runtime, job_id: str, token: str) -> None:
        self.rt = rt
        self.job_id = job_id
        self.token = token
        self.trial_id: str | None = None
        self._stop = threading.Event()
        self.lease_lost = False

    def start_trial(self, number: int, *, hyperparameters: dict[str, Any], epochs: int) -> str:
        """Open the trial row and reset progress."""
        with session_scope(self.rt.sessions) as session:
            trial = TrialStore(session).start(
                self.job_id, number, hyperparameters=hyperparameters, worker=self.rt.worker_name
            )
            JobStore(session).set_progress(self.job_id, epoch=0, epochs=epochs)
            self.trial_id = trial.id
        return trial.id

    execution = 0

    def on_epoch(self, epoch: int, values: dict[str, float], grad_norms: dict[str, float]) -> None:
        """Store one epoch and the job's progress, and renew the lease, in one transaction."""
        assert self.trial_id is not None
        with session_scope(self.rt.sessions) as session:
            TrialStore(session).record_epoch(
                self.trial_id, epoch, values, grad_norms, execution=self.execution
            )
            self._progress(session, epoch)
            self._observe(self._renew(session))

    def _progress(self, session: Session, epoch: int) -> None:
        JobStore(session).set_progress(self.job_id, epoch=epoch)

    def _renew(self, session: Session) -> JobStatus | None:
        return JobStore(session).heartbeat(self.job_id, self.token)

    def should_stop(self) -> bool:
        """True once the job is being cancelled or this worker lost its lease."""
        return self._stop.is_set()

    def _observe(self, status: JobStatus | None) -> None:
        if status is None:
            self.lease_lost = True
            self._stop.set()
        elif status == JobStatus.CANCELLING:
            self._stop.set()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                with session_scope(self.rt.sessions) as session:
                    self._observe(self._renew(session))
            except Exception:  # a failed beat is retried next interval; the lease has slack
                log.warning("heartbeat_failed", job_id=self.job_id, exc_info=True)

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew the lease and watch for cancellation in the background while the block runs."""
        thread = threading.Thread(
            target=self._beat,
            args=(self.rt.settings.heartbeat_interval_s,),
            name=f"heartbeat-{self.job_id}",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=5)


class TrialRecorder(Recorder):
    """Records one execution of one search trial; the trial has the lease, the job just stays alive."""

    def __init__(self, rt: Runtime, job_id: str, trial_id: str, *, execution: int) -> None:
        super().__init__(rt, job_id, token="")
        self.trial_id = trial_id
        self.execution = execution

    def _progress(self, session: Session, epoch: int) -> None:
        pass  # a search's progress counts trials, not epochs

    def _renew(self, session: Session) -> JobStatus | None:
        assert self.trial_id is not None
        trials, jobs = TrialStore(session), JobStore(session)
        trials.heartbeat(self.trial_id)
        jobs.touch(self.job_id)
        if trials.get(self.trial_id).status != TrialStatus.RUNNING:
            return None  # the reaper gave this trial to another worker
        return JobStatus(jobs.get_any(self.job_id).status)
