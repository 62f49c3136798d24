"""A population's chunk of epochs is stored for all its trials in one transaction, on a real Postgres."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, update

from models.base import utcnow
from models.db import make_engine, make_sessionmaker, session_scope
from models.settings import Settings
from models.status import JobStatus
from models.store import JobStore, Takeover, TrialStore
from models.tables import Job, Trial
from tests.support import placeholder_job
from worker.recorder import Recorder, TrialRecorder
from worker.runtime import Runtime
from worker.training.reporting import Epochs, report_together

pytestmark = pytest.mark.integration

TOKEN = "population-lease"


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    """A worker runtime on the test database."""
    engine = make_engine(settings.resolved_database_url())
    yield Runtime(settings, engine, make_sessionmaker(engine), os.getpid(), "reporting-test")
    engine.dispose()


def _running_search(rt: Runtime, trials: int) -> tuple[str, list[str]]:
    """A running search job of a fresh tenant and ``trials`` running trials, all under TOKEN."""
    takeover = Takeover(timedelta(seconds=120), socket.gethostname(), lambda pid: True)
    with session_scope(rt.sessions) as session:
        jobs = JobStore(session)
        job = placeholder_job(session, "reporting", kind="search", trials_total=trials)
        assert jobs.claim(job.id, TOKEN, worker="w", takeover=takeover) == "claimed"
        ids = [
            TrialStore(session).start(job.id, n, hyperparameters={}, token=TOKEN, worker="w").id
            for n in range(trials)
        ]
        return job.id, ids


def _epochs(first: int, count: int, loss: float) -> list[tuple[int, dict[str, float], dict[str, float]]]:
    return [(first + i, {"loss": loss + i, "val_loss": loss}, {"dense_0": 0.1}) for i in range(count)]


def test_a_chunk_of_a_population_is_stored_for_every_trial_in_one_commit(rt: Runtime) -> None:
    """Three trials' epochs in one transaction; each trial keeps its own; a trial whose lease moved to
    another worker stores nothing and is told to stop, while the others' epochs still land."""
    job_id, trials = _running_search(rt, 3)
    with session_scope(rt.sessions) as session:  # the third trial was given to another worker
        session.execute(update(Trial).where(Trial.id == trials[2]).values(lease_token="someone-else"))
    recorders = [TrialRecorder(rt, job_id, trial, TOKEN, execution=0) for trial in trials]
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(rt.engine, "commit", committed)
    try:
        report_together([(r, _epochs(1, 2, float(i))) for i, r in enumerate(recorders)])
    finally:
        event.remove(rt.engine, "commit", committed)
    assert len(commits) == 1
    with session_scope(rt.sessions) as session:
        stored = TrialStore(session).epochs(job_id)
        by_trial = {n: [(row.epoch, row.values["loss"]) for m, row in stored if m == n] for n in range(3)}
        assert JobStore(session).status_of(job_id) == JobStatus.RUNNING
    assert by_trial == {0: [(1, 0.0), (2, 1.0)], 1: [(1, 1.0), (2, 2.0)], 2: []}
    assert [r.should_stop() for r in recorders] == [False, False, True]
    assert [r.last_epoch for r in recorders[:2]] == [2, 2]


def test_a_chunk_stored_again_replaces_its_epochs_instead_of_duplicating_them(rt: Runtime) -> None:
    """Storing the same chunk again (as a retry does when the first commit's answer was lost in an
    outage) leaves each epoch once."""
    job_id, trials = _running_search(rt, 2)
    recorders = [TrialRecorder(rt, job_id, trial, TOKEN, execution=0) for trial in trials]
    batches: list[tuple[Recorder, Epochs]] = [(r, _epochs(1, 3, 0.5)) for r in recorders]
    Recorder.on_epochs_together(batches)
    Recorder.on_epochs_together(batches)
    with session_scope(rt.sessions) as session:
        epochs = [(n, row.epoch) for n, row in TrialStore(session).epochs(job_id)]
    assert epochs == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]


def test_a_chunk_writes_the_search_jobs_row_after_every_trials_row(rt: Runtime) -> None:
    """A trial's heartbeat locks its trial's row, then the job's; a chunk taking them the other way round
    could deadlock with it (Postgres aborts one: a lost beat, or a chunk stored again after a wait)."""
    job_id, trials = _running_search(rt, 3)
    recorders = [TrialRecorder(rt, job_id, trial, TOKEN, execution=0) for trial in trials]
    writes: list[str] = []

    def written(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("UPDATE"):
            writes.append(statement.split()[1])

    event.listen(rt.engine, "before_cursor_execute", written)
    try:
        report_together([(r, _epochs(1, 1, 0.0)) for r in recorders])
    finally:
        event.remove(rt.engine, "before_cursor_execute", written)
    assert "job" in writes and "trial" in writes
    assert writes.index("job") > max(i for i, table in enumerate(writes) if table == "trial")


def _job_heartbeat(rt: Runtime, job_id: str) -> datetime | None:
    with session_scope(rt.sessions) as session:
        return JobStore(session).get_any(job_id).heartbeat_at


def _age_job_heartbeat(rt: Runtime, job_id: str) -> datetime:
    old = utcnow() - timedelta(minutes=5)
    with session_scope(rt.sessions) as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=old))
    return old


def test_a_populations_trials_renew_the_search_job_once_per_interval(rt: Runtime) -> None:
    """Every trial of a population keeps the one search job alive; its row is written once per
    heartbeat interval by this process, not by each trial's chunk."""
    job_id, trials = _running_search(rt, 2)
    recorders = [TrialRecorder(rt, job_id, trial, TOKEN, execution=0) for trial in trials]
    report_together([(r, _epochs(1, 1, 0.0)) for r in recorders])  # renews the job's row
    old = _age_job_heartbeat(rt, job_id)
    report_together([(r, _epochs(2, 1, 0.0)) for r in recorders])  # within the interval: not again
    assert _job_heartbeat(rt, job_id) == old
    time.sleep(rt.settings.heartbeat_interval_s)
    report_together([(r, _epochs(3, 1, 0.0)) for r in recorders])
    renewed = _job_heartbeat(rt, job_id)
    assert renewed is not None and renewed > old


def test_a_heartbeat_block_after_another_still_renews_the_lease(rt: Runtime) -> None:
    """A train job's closing evaluation runs in a second heartbeat block: it renews the lease as the
    first did (it once ended at once, leaving a long evaluation to lapse the lease)."""
    quick = Runtime(
        rt.settings.model_copy(update={"heartbeat_interval_s": 0.05}), rt.engine, rt.sessions, rt.pid, "quick"
    )
    job_id, trials = _running_search(quick, 1)
    recorder = Recorder(quick, job_id, TOKEN)
    recorder.trial_id = trials[0]
    with recorder.heartbeat():
        time.sleep(0.2)
    old = _age_job_heartbeat(quick, job_id)
    with recorder.heartbeat():
        time.sleep(0.5)
    renewed = _job_heartbeat(quick, job_id)
    assert renewed is not None and renewed > old
    assert not recorder.should_stop()
