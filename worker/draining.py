"""Warm shutdown without waiting hours: the worker's main process marks itself draining, and the task
running in its pool hands its work back at the next epoch boundary (checkpointed) instead of finishing.

The mark is a file named after the main process's pid under the data directory, because the pool's
child process only shares the file system with its parent, and a signal would interrupt training.
"""

from __future__ import annotations

import os
from pathlib import Path


def _folder(data_dir: Path) -> Path:
    return data_dir / "draining"


def mark(data_dir: Path, pid: int) -> None:
    """Say that the worker process ``pid`` is shutting down."""
    folder = _folder(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(pid)).touch()


def clear(data_dir: Path, pid: int) -> None:
    """Forget an old mark (a new process may reuse the pid)."""
    (_folder(data_dir) / str(pid)).unlink(missing_ok=True)


def draining(data_dir: Path) -> bool:
    """Whether this process's worker (itself with the solo pool, else its parent) is shutting down."""
    folder = _folder(data_dir)
    return any((folder / str(pid)).exists() for pid in (os.getpid(), os.getppid()))
