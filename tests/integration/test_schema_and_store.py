"""Schema without drift, and the job status machine's guarantees on a real Postgres."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import update

from models.base import utcnow
from models.db import make_engine, make_sessionmaker, session_scope
from models.settings import Settings
from models.status import JobStatus
from models.store import JobStore, Takeover
from models.tables import Base, Job
from tests.support import placeholder_job

pytestmark = pytest.mark.integration


def test_migrations_match_the_models(pg_url: str) -> None:
    """`alembic upgrade head` builds exactly the schema the models declare (no drift)."""
    engine = make_engine(pg_url)
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


@pytest.fixture
def queued_job(settings: Settings) -> str:
    """A queued job of a fresh tenant, straight in the database."""
    engine = make_engine(settings.resolved_database_url())
    with session_scope(make_sessionmaker(engine)) as session:
        job = placeholder_job(session, "store", kind="train", trials_total=1)
        job_id = job.id
    engine.dispose()
    return job_id


def _takeover(settings: Settings) -> Takeover:
    return Takeover(
        timedelta(seconds=settings.lease_timeout_s), socket.gethostname(), lambda pid: pid != 999999
    )


def test_a_second_claim_of_the_same_job_fails(settings: Settings, queued_job: str) -> None:
    """Two workers receiving the same message: exactly one claims the job."""
    engine = make_engine(settings.resolved_database_url())
    sessions = make_sessionmaker(engine)
    takeover = _takeover(settings)
    with session_scope(sessions) as session:
        assert JobStore(session).claim(queued_job, "token-a", worker="a", takeover=takeover) == "claimed"
    with session_scope(sessions) as session:
        assert JobStore(session).claim(queued_job, "token-b", worker="b", takeover=takeover) == "busy"
        jobs = JobStore(session)
        # A worker that lost its lease can no longer finish the job.
        assert jobs.transition(queued_job, JobStatus.SUCCEEDED, reason="x", lease_token="token-b") is None
        assert jobs.get_any(queued_job).attempt == 1
        assert [e.to_status for e in jobs.events(queued_job)] == ["queued", "running"]
    engine.dispose()


def test_a_claim_takes_over_a_job_whose_holder_died_on_this_host_and_fences_it_out(
    settings: Settings, queued_job: str
) -> None:
    """A redelivered message need not wait for the lease: a dead pid on this host is lost at once."""
    engine = make_engine(settings.resolved_database_url())
    sessions = make_sessionmaker(engine)
    takeover = _takeover(settings)
    with session_scope(sessions) as session:
        jobs = JobStore(session)
        assert jobs.claim(queued_job, "token-a", worker=f"{socket.gethostname()}:999999", takeover=takeover)
        assert jobs.claim(queued_job, "token-b", worker="b", takeover=takeover) == "taken_over"
        assert jobs.get_any(queued_job).attempt == 2
        assert jobs.heartbeat(queued_job, "token-a") is None, "the dead holder's lease is gone"
        assert jobs.transition(queued_job, JobStatus.SUCCEEDED, reason="x", lease_token="token-a") is None
        events = jobs.events(queued_job)
        assert "taken over by b" in (events[-1].reason or "") and "999999 is gone" in (
            events[-1].reason or ""
        )
    engine.dispose()


def _kill_worker_and_reap(settings: Settings, job_id: str, redis_url: str) -> None:
    """Claim the job for a worker that then 'dies' (no heartbeats), and run the reaper."""
    engine = make_engine(settings.resolved_database_url())
    stale = utcnow() - timedelta(seconds=settings.lease_timeout_s + 5)
    with session_scope(make_sessionmaker(engine)) as session:
        assert JobStore(session).claim(job_id, "dead-worker", worker="dead", takeover=_takeover(settings))
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=stale))
    engine.dispose()
    queue = f"{settings.queue}-reaper"
    env = {
        "TUNEFORGE_DATABASE_URL": settings.resolved_database_url(),
        "TUNEFORGE_BROKER_URL": redis_url,
        "TUNEFORGE_QUEUE": queue,
        "TUNEFORGE_MAX_ATTEMPTS": "2",
        "PATH": os.environ["PATH"],
    }
    code = "from worker.reaper import reap; reap()"
    subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=True)
    redis.Redis.from_url(redis_url).delete(queue)


def test_reaper_retries_a_lost_job_then_gives_up(settings: Settings, queued_job: str, redis_url: str) -> None:
    """Worker lost: running -> queued with attempt 1 kept; lost again at the cap: failed."""
    _kill_worker_and_reap(settings, queued_job, redis_url)
    engine = make_engine(settings.resolved_database_url())
    with session_scope(make_sessionmaker(engine)) as session:
        job = JobStore(session).get_any(queued_job)
        assert (job.status, job.attempt, job.lease_token) == (JobStatus.QUEUED, 1, None)
        assert job.dispatched_at is not None, "the reaper re-sent the job's message"
    _kill_worker_and_reap(settings, queued_job, redis_url)
    with session_scope(make_sessionmaker(engine)) as session:
        jobs = JobStore(session)
        job = jobs.get_any(queued_job)
        assert job.status == JobStatus.FAILED and job.attempt == 2
        assert job.error and job.error["code"] == "worker_lost"
        assert [e.to_status for e in jobs.events(queued_job)] == [
            "queued",
            "running",
            "queued",
            "running",
            "failed",
        ]
    engine.dispose()


def test_api_process_never_imports_tensorflow() -> None:
    """Importing and building the API app loads no tensorflow or keras module."""
    code = (
        "import sys; from api.main import create_app; create_app(); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'keras_tuner', 'sklearn'}); print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
