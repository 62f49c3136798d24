"""The Celery application, configured for long training tasks (see ENVIRONMENT.md's traps)."""

from __future__ import annotations

import importlib
import os
import shutil
import threading

import structlog
from celery import Celery
from celery.signals import (
    beat_init,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutting_down,
)

from models.logs import configure_logging
from models.settings import Settings
from worker import draining
from worker.local_broker import use_local_broker
from worker.runtime import reset_runtime, runtime

# TensorFlow (imported later, inside tasks) reads this once: keep its C++ banner out of logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _metrics_folder(settings: Settings) -> None:
    # prometheus_client decides at import whether it counts per process in files: this runs in the
    # worker's main process before worker.metrics is imported, and its children inherit the folder.
    if not settings.worker_metrics_port or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return
    folder = settings.data_dir / "metrics" / f"worker-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)  # an earlier process with this pid: not ours to sum
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


_metrics_folder(Settings())


def create_celery(settings: Settings) -> Celery:
    """Build a Celery app for ``settings``; the same code serves Redis and the embedded broker."""
    app = Celery(
        "tuneforge",
        broker=settings.resolved_broker_url(),
        backend=settings.resolved_result_backend(),
        include=["worker.tasks", "worker.predict", "worker.trial_tasks", "worker.export"],
    )
    app.conf.update(
        broker_transport_options=settings.broker_transport_options(),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_hard_time_limit_s,
        task_ignore_result=True,
        result_expires=3600,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    use_local_broker(app, settings)
    return app


@worker_process_init.connect
def _fresh_process_state(**_: object) -> None:
    # Engines and sockets do not survive fork: every child builds its own.
    reset_runtime()


@worker_process_init.connect
def _preload_training(**_: object) -> None:
    # In a thread: Celery gives a new child 4 s to report itself up, and the import takes about that.
    # A task that arrives meanwhile waits on the same import (Python's import lock), never twice.
    if Settings().preload_training:
        threading.Thread(target=_load_training_stack, name="preload-training", daemon=True).start()


def _load_training_stack() -> None:
    runtime()  # sets the compiled-program cache folder, which JAX reads when it is first imported
    for module in ("worker.training.train", "worker.training.fast.population"):
        importlib.import_module(module)


@worker_init.connect
def _not_draining(**_: object) -> None:
    draining.clear(Settings().data_dir, os.getpid())


@worker_init.connect
@worker_process_init.connect
def _structured_logs(**_: object) -> None:
    configure_logging(json_logs=Settings().log_json)


@task_prerun.connect
def _fresh_log_context(**_: object) -> None:
    # A prefork child runs task after task: no ids of the last one on this one's lines.
    structlog.contextvars.clear_contextvars()


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    from worker.metrics import serve

    serve(Settings())


@worker_process_shutdown.connect
def _child_exited(**_: object) -> None:
    from worker.metrics import child_exited

    child_exited(os.getpid())


@worker_shutting_down.connect
def _drain(**_: object) -> None:
    # The running task sees this within a heartbeat and hands its work back (checkpointed), so a
    # SIGTERM ends the worker in seconds instead of after the training (docker stop gives 10 s).
    draining.mark(Settings().data_dir, os.getpid())


@beat_init.connect
def _start_reaper(**_: object) -> None:
    # The reaper lives in beat, not on the job queue, where a backlog would delay or expire it.
    from worker.reaper import start_in_beat

    reset_runtime()
    start_in_beat(Settings().reap_interval_s)


@beat_init.connect
def _start_webhooks(**_: object) -> None:
    # Deliveries are sent from beat too: a backlog of training on the job queue never delays them.
    from worker.webhook_dispatcher import start_in_beat

    start_in_beat()


app = create_celery(Settings())
