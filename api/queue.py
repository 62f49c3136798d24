"""Sending work to the workers: a producer-only Celery client that knows task names, not code."""

from __future__ import annotations

from celery import Celery
from tenacity import retry, stop_after_attempt, wait_exponential

from models.settings import Settings
from worker.protocol import RUN_JOB, run_job_args


class JobQueue:
    """Publishes ``RUN_JOB`` messages to the broker the workers consume."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery = Celery("tuneforge-api", broker=settings.resolved_broker_url())
        self.celery.conf.update(
            broker_transport_options=settings.broker_transport_options(),
            broker_connection_retry_on_startup=False,
            broker_connection_timeout=3,
            task_ignore_result=True,
        )

    @retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.1, max=1), reraise=True)
    def send_run_job(self, job_id: str) -> None:
        """Publish the job's message; retried briefly, then the reaper re-sends it."""
        self.celery.send_task(RUN_JOB, args=run_job_args(job_id), queue=self.settings.queue, retry=False)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        """Release broker connections."""
        self.celery.close()
