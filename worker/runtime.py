"""Per-process state of a worker: settings, engine and sessionmaker, built lazily after fork."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_sessionmaker
from models.settings import Settings


@dataclass
class Runtime:
    """What a worker process needs to reach the database and the disk."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    pid: int
    worker_name: str


_current: Runtime | None = None


def runtime() -> Runtime:
    """This process's runtime, created on first use (so never inherited across fork)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        settings = Settings()
        # The fast engine's compiled programs persist across processes and restarts (read at jax import).
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(settings.data_dir / "jax-cache"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
        engine = make_engine(settings.resolved_database_url())
        name = os.environ.get("TUNEFORGE_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"
        _current = Runtime(settings, engine, make_sessionmaker(engine), os.getpid(), name)
    return _current


def reset_runtime() -> None:
    """Forget any runtime inherited from a parent process."""
    global _current
    _current = None
