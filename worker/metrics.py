"""Prometheus metrics of a worker: jobs and trials by outcome, epoch and trial durations, heartbeats,
predict latency and the queue's depth, served by the worker's main process for all its children.

Celery's prefork children each count in their own process; prometheus_client's multiprocess mode
(files in ``PROMETHEUS_MULTIPROC_DIR``, set by ``worker.app`` before this module is imported) lets the
main process serve their sum on ``TUNEFORGE_WORKER_METRICS_PORT``. Outcomes are counted after their
transaction commits, so a retried or rolled-back write counts once or not at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import event
from sqlalchemy.orm import Session

from models.settings import Settings

JOBS = Counter("tuneforge_worker_jobs", "Jobs ended by this worker", ["kind", "outcome"])
TRIALS = Counter("tuneforge_worker_trials", "Trials finished by this worker", ["outcome"])
EPOCH_SECONDS = Histogram(
    "tuneforge_worker_epoch_seconds",
    "Wall time of one training epoch (a chunk of epochs on the fast engine, shared evenly)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
)
TRIAL_SECONDS = Histogram(
    "tuneforge_worker_trial_seconds",
    "Wall time of one trial, from its claim to its result",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 7200),
)
HEARTBEATS = Counter(
    "tuneforge_worker_heartbeats",
    "Heartbeat transactions of running jobs and trials (stored epochs renew leases too)",
)
PREDICT_SECONDS = Histogram(
    "tuneforge_worker_predict_seconds",
    "Time to answer one predict request (model load included when it was not loaded)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Count ``action`` once the transaction commits (a rolled-back or retried one counts nothing)."""
    event.listen(session, "after_commit", lambda _: action(), once=True)


def count_trial(session: Session, outcome: str, started: float | None = None) -> None:
    """A trial finished with ``outcome`` in this transaction (and took since ``started``)."""

    def count() -> None:
        TRIALS.labels(outcome).inc()
        if started is not None:
            TRIAL_SECONDS.observe(time.monotonic() - started)

    after_commit(session, count)


class QueueDepth:
    """Messages waiting in the worker's queues, read from the broker at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Any:
        """One gauge sample per queue (training and prediction)."""
        gauge = GaugeMetricFamily("tuneforge_queue_depth", "Messages waiting in the broker", labels=["queue"])
        for queue in (self.settings.queue, self.settings.predict_queue):
            depth = self._depth(queue)
            if depth is not None:
                gauge.add_metric([queue], depth)
        yield gauge

    def _depth(self, queue: str) -> int | None:
        broker = self.settings.resolved_broker_url()
        try:
            if broker.startswith(("redis://", "rediss://")):
                import redis

                client = redis.Redis.from_url(broker, socket_timeout=1, socket_connect_timeout=1)
                try:
                    return int(client.llen(queue))
                finally:
                    client.close()
            folder = Path(str(self.settings.broker_transport_options()["data_folder_in"]))
            return sum(1 for name in os.listdir(folder) if name.endswith(f".{queue}.msg"))
        except Exception:  # a broker that cannot answer has no depth to show, not a failed scrape
            return None


def serve(settings: Settings) -> None:
    """Serve the sum of every child's metrics, and the queue depth, on the configured port."""
    if not settings.worker_metrics_port:
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(QueueDepth(settings))
    start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=registry)


def child_exited(pid: int) -> None:
    """Drop a finished child's live gauges (its counters stay summed)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
