"""The only bridge from training to the database: epochs, heartbeats, cancellation, results."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy.orm import Session

from models.db import session_scope
from models.status import JobStatus, TrialStatus
from models.store import JobStore, TrialStore
from worker.db_retry import retry_transient
from worker.draining import draining
from worker.metrics import EPOCH_SECONDS, HEARTBEATS
from worker.runtime import Runtime
from worker.training.reporting import Epochs

log = structlog.get_logger(__name__)

# When this process last renewed each search job's heartbeat. A population's trials all keep one job
# alive: each renewing it made dozens of transactions a second queue on that one row's lock, and the
# training threads waited on them for more than half their time (py-spy, 64 trials).
_job_touched: dict[str, float] = {}
_job_touched_lock = threading.Lock()


def _job_touch_due(job_id: str, interval: float) -> bool:
    """True (and noted) when no trial of this process renewed ``job_id`` in the last ``interval`` s."""
    now = time.monotonic()
    with _job_touched_lock:
        if now - _job_touched.get(job_id, -float("inf")) < interval:
            return False
        _job_touched[job_id] = now
        if len(_job_touched) > 1024:  # finished searches' entries: the oldest go first
            for stale in sorted(_job_touched, key=_job_touched.__getitem__)[:512]:
                del _job_touched[stale]
        return True


class Recorder:
    """Records one trial of one job under the lease ``token``; implements training's Reporter."""

    def __init__(self, rt: Runtime, job_id: str, token: str) -> None:
        self.rt = rt
        self.job_id = job_id
        self.token = token
        self.trial_id: str | None = None
        self._stop = threading.Event()
        self.lease_lost = False
        self.started = time.monotonic()  # for the trial's duration
        self._last_report = self.started  # for epoch durations
        self._renewed = -float("inf")  # when the lease was last renewed (by a beat or an epoch batch)

    @retry_transient
    def start_trial(self, number: int, *, hyperparameters: dict[str, Any], epochs: int) -> str:
        """Open (or, after a lost attempt, take over) the trial row under this lease; reset progress."""
        with session_scope(self.rt.sessions) as session:
            trial = TrialStore(session).start(
                self.job_id, number, hyperparameters=hyperparameters, token=self.token, worker=self.rt.holder
            )
            JobStore(session).set_progress(self.job_id, epoch=0, epochs=epochs)
            self.trial_id = trial.id
        return trial.id

    execution = 0

    def on_epoch(self, epoch: int, values: dict[str, float], grad_norms: dict[str, float]) -> None:
        """Store one epoch and the job's progress, and renew the lease, in one transaction."""
        self.on_epochs([(epoch, values, grad_norms)])

    def on_epochs(self, epochs: Epochs) -> None:
        """Store a batch of epochs, the job's progress and renew the lease, in one transaction."""
        type(self).on_epochs_together([(self, epochs)])

    @staticmethod
    @retry_transient
    def on_epochs_together(batches: list[tuple[Recorder, Epochs]]) -> None:
        """Store each recorder's epochs (a population's compiled chunk) in one transaction: a commit per
        trial made a 64-trial population's training threads wait on the database most of their time."""
        with session_scope(batches[0][0].rt.sessions) as session:
            statuses = [recorder._store(session, epochs) for recorder, epochs in batches]
            # The job's row last, after every trial's: a heartbeat locks its trial, then the job, and
            # the same order here cannot deadlock with it.
            alive = {r.job_id: r for (r, _), status in zip(batches, statuses, strict=True) if status}
            for recorder in alive.values():
                recorder._keep_job_alive(session)
        # Observed after commit: reacting may write the same rows from another session.
        for (recorder, epochs), status in zip(batches, statuses, strict=True):
            recorder._stored(epochs, status)

    def _store(self, session: Session, epochs: Epochs) -> JobStatus | None:
        """Write the epochs, progress and lease renewal; the job's status, or None if the lease is lost."""
        assert self.trial_id is not None
        if not TrialStore(session).record_epochs(
            self.trial_id, epochs, lease_token=self.token, execution=self.execution
        ):
            return None
        self._progress(session, epochs[-1][0])
        return self._renew(session, trial_renewed=True)

    def _stored(self, epochs: Epochs, status: JobStatus | None) -> None:
        if status is not None:
            self._renewed = time.monotonic()
        self.last_epoch = epochs[-1][0]
        now = time.monotonic()
        for _ in epochs:  # a fast-engine chunk: its epochs share its time evenly
            EPOCH_SECONDS.observe((now - self._last_report) / len(epochs))
        self._last_report = now
        self._observe(status)

    def _progress(self, session: Session, epoch: int) -> None:
        JobStore(session).set_progress(self.job_id, epoch=epoch)

    def _renew(self, session: Session, *, trial_renewed: bool = False) -> JobStatus | None:
        # The trial's row before the job's, in every transaction (see on_epochs_together).
        if self.trial_id is not None and not trial_renewed:
            TrialStore(session).heartbeat(self.trial_id, self.token)
        return JobStore(session).heartbeat(self.job_id, self.token)

    def _keep_job_alive(self, session: Session) -> None:
        """Nothing more for a train job: renewing its lease (``_renew``) keeps it alive."""

    def share_watch(self, primary: Recorder) -> None:
        """Stop when ``primary`` stops (executions of one trial share its lease and cancel watch)."""
        self._stop = primary._stop

    def should_stop(self) -> bool:
        """True once the job is being cancelled or this worker lost its lease."""
        return self._stop.is_set()

    def handing_back(self) -> bool:
        """True once this worker is shutting down (see ``worker.draining``): checkpoint, then stop."""
        return draining(self.rt.settings.data_dir)

    def _observe(self, status: JobStatus | None) -> None:
        if status is None:
            self.lease_lost = True
            self._stop.set()
        elif status == JobStatus.CANCELLING:
            self.cancel_requested = True
            self._stop.set()
            if not self._released:
                # A compiled chunk cannot be interrupted: close now, so a cancel lands within seconds;
                # the run's later writes are fenced (terminal job, stopped trial) and change nothing.
                self._released = True
                self._release()

    _released = False
    cancel_requested = False  # a user cancel, as opposed to a lost lease or a shutdown
    last_epoch = 0

    def _release(self) -> None:
        from worker.finish import finish_cancelled

        finish_cancelled(self.rt, self, epochs_run=self.last_epoch)

    def _beat(self, interval: float, done: threading.Event) -> None:
        # Until the block ends, or the run is told to stop (a cancel, a lost lease): then nothing is left
        # to renew.
        while not done.wait(interval) and not self._stop.is_set():
            if time.monotonic() - self._renewed < interval:
                continue  # epochs being stored renew the lease: a beat would only add a transaction
            try:
                with session_scope(self.rt.sessions) as session:
                    status = self._renew(session)
                    if status is not None:
                        self._keep_job_alive(session)
                self._renewed = time.monotonic()
                HEARTBEATS.inc()
                self._observe(status)
            except Exception:  # a failed beat is retried next interval; the lease has slack
                log.warning("heartbeat_failed", job_id=self.job_id, exc_info=True)

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew the lease and watch for cancellation in the background while the block runs."""
        # The block's own end, not the run's stop: a train job's closing evaluation runs in a second
        # block, which ending the first by stopping the run had left without a heartbeat.
        done = threading.Event()
        thread = threading.Thread(
            target=self._beat,
            args=(self.rt.settings.heartbeat_interval_s, done),
            name=f"heartbeat-{self.job_id}",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)


class TrialRecorder(Recorder):
    """Records one execution of one search trial; the trial has the lease, the job just stays alive."""

    def __init__(self, rt: Runtime, job_id: str, trial_id: str, token: str, *, execution: int) -> None:
        super().__init__(rt, job_id, token)
        self.trial_id = trial_id
        self.execution = execution

    def _progress(self, session: Session, epoch: int) -> None:
        pass  # a search's progress counts trials, not epochs

    def _release(self) -> None:
        if self.execution == 0:
            with session_scope(self.rt.sessions) as session:
                assert self.trial_id is not None
                TrialStore(session).finish(
                    self.trial_id,
                    TrialStatus.STOPPED,
                    reason="search cancelled",
                    lease_token=self.token,
                    error="cancelled",
                )
            # The step runs here, not as a task: this worker's only process may be the one training.
            from worker.trial_tasks import advance

            advance(self.rt, self.job_id)

    def _renew(self, session: Session, *, trial_renewed: bool = False) -> JobStatus | None:
        assert self.trial_id is not None
        if not trial_renewed and not TrialStore(session).heartbeat(self.trial_id, self.token):
            return None  # the trial was given to another worker (or ended): this run is stale
        return JobStore(session).status_of(self.job_id)

    def _keep_job_alive(self, session: Session) -> None:
        """Renew the search job's heartbeat, once per interval for all of this process's trials."""
        if _job_touch_due(self.job_id, self.rt.settings.heartbeat_interval_s):
            JobStore(session).touch(self.job_id)
