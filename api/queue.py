"""Sending work to the workers: a producer-only Celery client that knows task names, not code."""

from __future__ import annotations

import contextlib
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from tenacity import retry, stop_after_attempt, wait_fixed

from models.errors import ServiceUnavailable
from models.settings import Settings
from worker.local_broker import use_local_broker
from worker.protocol import EXPORT, PREDICT, RUN_JOB, ModelFileMismatch, run_job_args

# A request must never wait out a broker outage: the job is stored, the reaper re-sends it.
PUBLISH_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0, "max_retries": 0}


class JobQueue:
    """Publishes ``RUN_JOB`` messages to the broker the workers consume."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery = Celery(
            "tuneforge-api", broker=settings.resolved_broker_url(), backend=settings.resolved_result_backend()
        )
        self.celery.conf.update(
            broker_transport_options=settings.broker_transport_options() | PUBLISH_TIMEOUTS,
            broker_connection_retry_on_startup=False,
            broker_connection_timeout=PUBLISH_TIMEOUTS["socket_connect_timeout"],
            broker_connection_max_retries=1,
            task_ignore_result=True,
        )
        use_local_broker(self.celery, settings)

    @retry(stop=stop_after_attempt(2), wait=wait_fixed(0.1), reraise=True)
    def send_run_job(self, job_id: str) -> None:
        """Publish the job's message within about a second; on failure the reaper re-sends it."""
        # ignore_result: a Redis result backend would otherwise be contacted (and retried for a
        # minute) before the message is even sent.
        self.celery.send_task(
            RUN_JOB, args=run_job_args(job_id), queue=self.settings.queue, retry=False, ignore_result=True
        )

    def predict(
        self, *, storage_key: str, sha256: str, input_schema: dict[str, Any], rows: list[dict[str, Any]]
    ) -> list[Any]:
        """Ask a prediction worker for predictions and wait for them (bounded by predict_timeout_s)."""
        timeout = self.settings.predict_timeout_s
        result = self.celery.send_task(
            PREDICT,
            args=[storage_key, sha256, input_schema, rows],
            queue=self.settings.predict_queue,
            expires=timeout,
        )
        try:
            predictions: list[Any] = result.get(timeout=timeout, propagate=True)
        except CeleryTimeout as exc:
            raise ServiceUnavailable(
                "prediction_timeout", f"no prediction worker answered within {timeout:.0f} s"
            ) from exc
        except ModelFileMismatch as exc:
            raise ServiceUnavailable(
                "model_file_mismatch",
                "the stored model file does not match its recorded sha256; it was not loaded",
            ) from exc
        finally:
            with contextlib.suppress(OSError):  # the file backend has no result file after a timeout
                result.forget()
        return predictions

    def export(
        self, *, storage_key: str, sha256: str, input_schema: dict[str, Any], fmt: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Have a prediction worker write and check another format of a model (export_timeout_s)."""
        timeout = self.settings.export_timeout_s
        result = self.celery.send_task(
            EXPORT, args=[storage_key, sha256, input_schema, fmt, data], queue=self.settings.predict_queue
        )
        try:
            found: dict[str, Any] = result.get(timeout=timeout, propagate=True)
        except CeleryTimeout as exc:
            raise ServiceUnavailable(
                "export_timeout", f"no worker finished the export within {timeout:.0f} s"
            ) from exc
        except Exception as exc:  # the worker's reason (a parity failure, a file mismatch), not a 500
            raise ServiceUnavailable("export_failed", f"the export failed: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                result.forget()
        return found

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)

    def close(self) -> None:
        """Release broker connections."""
        self.celery.close()
