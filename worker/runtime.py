"""Per-process state of a worker: settings, engine and sessionmaker, built lazily after fork."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_sessionmaker
from models.settings import Settings
from models.store import Takeover


@dataclass
class Runtime:
    """What a worker process needs to reach the database and the disk."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pid: int
    worker_name: str

    @property
    def holder(self) -> str:
        """This process as a lease holder: its name, then "host:pid" so a claim on this host can tell
        it died (the name alone when it is already "host:pid")."""
        where = f"{socket.gethostname()}:{self.pid}"
        return where if self.worker_name == where else f"{self.worker_name} {where}"

    def takeover(self) -> Takeover:
        """When this process may take running work from its holder."""
        return Takeover(
            lease_timeout=timedelta(seconds=self.settings.lease_timeout_s),
            host=socket.gethostname(),
            pid_alive=_pid_alive,
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    # A killed child stays a zombie until its parent reaps it; a zombie is not doing work.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


_current: Runtime | None = None
# XLA:CPU splits each matrix product across the cores; the fast engine's are tiny (a batch of 32 rows
# through layers of at most a few hundred units), and the split costs more than it saves: a 10-trial
# population on 2 cores trained in 16-20 s single-threaded against 22 s split. The other cores train
# the population's other programs instead (training_lanes). Read when JAX starts, as the cache folder is.
SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


def single_threaded_matmuls() -> None:
    """Ask XLA:CPU for single-threaded matrix products, unless XLA_FLAGS already says otherwise."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_FLAG}".strip()


def runtime() -> Runtime:
    """This process's runtime, created on first use (so never inherited across fork)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        settings = Settings()
        # The fast engine's compiled programs persist across processes and restarts (read at jax import).
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(settings.data_dir / "jax-cache"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
        single_threaded_matmuls()
        engine = make_engine(settings.resolved_database_url())
        name = os.environ.get("TUNEFORGE_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"
        _current = Runtime(settings, engine, make_sessionmaker(engine), os.getpid(), name)
    return _current


def reset_runtime() -> None:
    """Forget any runtime inherited from a parent process."""
    global _current
    _current = None
