"""Embedded mode: schema, a first tenant and key, and a local worker, with nothing installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.db import make_engine, make_sessionmaker, session_scope
from models.migrate import upgrade_to_head
from models.settings import Settings
from models.store import KeyStore

FIRST_TENANT = "default"


def create_key(settings: Settings, tenant: str, *, name: str | None = None) -> str:
    """Create an API key for ``tenant`` (creating the tenant) and return its plaintext."""
    with with_keys(settings) as keys:
        _, plaintext = keys.create_key(keys.ensure_tenant(tenant).id, name=name)
    return plaintext


@contextmanager
def with_keys(settings: Settings) -> Iterator[KeyStore]:
    """A key store in one transaction on the configured database (for the ``keys`` commands)."""
    engine = make_engine(settings.resolved_database_url())
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield KeyStore(session)
    finally:
        engine.dispose()


def ensure_first_key(settings: Settings) -> tuple[str, bool]:
    """Return the embedded key from its file, creating tenant, key and file on first start."""
    path = settings.api_key_file
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip(), False
    plaintext = create_key(settings, FIRST_TENANT, name="embedded")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(plaintext + "\n")
    return plaintext, True


def prepare(settings: Settings) -> tuple[str, bool]:
    """Create folders, migrate the SQLite schema and make sure a first key exists."""
    os.umask(0o077)  # the database, datasets and models: this user's only (and the workers it starts)
    settings.ensure_dirs()
    upgrade_to_head(settings.resolved_database_url())
    return ensure_first_key(settings)


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.app:app", *args]


def worker_command(
    *,
    queue: str,
    concurrency: int,
    beat: bool,
    data_dir: Path,
    pool: str = "prefork",
    name: str | None = None,
    max_tasks_per_child: int | None = None,
    nice: int = 0,
) -> list[str]:
    """The ``celery worker`` command line used by ``tuneforge serve``, ``tuneforge worker`` and tests."""
    command = ["nice", "-n", str(nice)] if nice else []
    command += _celery("worker", "-Q", queue, "-c", str(concurrency), f"--pool={pool}", "--loglevel=INFO")
    # Gossip and mingle only slow start-up: the database, not peers, coordinates workers.
    command += ["--without-gossip", "--without-mingle"]
    if name:
        command += ["-n", name]
    if max_tasks_per_child:
        command += [f"--max-tasks-per-child={max_tasks_per_child}"]
    if beat:
        command += ["-B", "-s", str(data_dir / "celerybeat-schedule")]
    return command


def beat_command(data_dir: Path) -> list[str]:
    """The ``celery beat`` command line that schedules the reaper."""
    return _celery("beat", "--loglevel=INFO", "-s", str(data_dir / "celerybeat-schedule"))


PREDICTOR_TASKS_PER_CHILD = 10_000  # predictions are light; a long-lived child keeps models loaded


def start_workers(settings: Settings, *, concurrency: int = 1) -> list[subprocess.Popen[bytes]]:
    """Start the embedded server's workers: a trainer (with the reaper's beat) and a predictor."""
    data_dir = settings.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"TUNEFORGE_DATA_DIR": str(data_dir)}
    commands = {
        "trainer": worker_command(
            queue=settings.queue,
            concurrency=concurrency,
            beat=True,
            data_dir=data_dir,
            name="trainer@%h",
            nice=settings.trainer_nice,
        ),
        "predictor": worker_command(
            queue=settings.predict_queue,
            concurrency=1,
            beat=False,
            data_dir=data_dir,
            name="predictor@%h",
            max_tasks_per_child=PREDICTOR_TASKS_PER_CHILD,
        ),
    }
    processes = []
    for role, command in commands.items():
        with (logs / f"{role}.log").open("ab") as log:
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def stop_workers(workers: list[subprocess.Popen[bytes]], *, grace_s: float = 10) -> None:
    """Warm shutdown for all at once, then cold; a job cut off is requeued by the reaper later."""
    for escalate in (
        subprocess.Popen.terminate,
        lambda p: p.send_signal(signal.SIGQUIT),
        subprocess.Popen.kill,
    ):
        running = [worker for worker in workers if worker.poll() is None]
        for worker in running:
            escalate(worker)
        deadline = time.monotonic() + grace_s
        for worker in running:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue
