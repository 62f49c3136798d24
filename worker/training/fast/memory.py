"""Keeping a long-lived worker's memory flat: compiled programs in memory are bounded, freed memory is
given back to the OS.

Every distinct program (padding, optimizer set, batch size, ...) compiled by XLA stays in JAX's
in-memory caches for the life of the process, tens of MB each; a worker that runs searches for days
meets hundreds. Past a bound (``Settings.programs_in_memory``) the caches are dropped: the programs
stay in the on-disk compilation cache (``JAX_COMPILATION_CACHE_DIR``), so the next use reloads instead
of recompiling.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import jax
import structlog

from worker.training.fast.loop import run_chunk
from worker.training.fast.programs import forget_in_memory

log = structlog.get_logger(__name__)


def _programs_in_memory() -> int:
    size = getattr(run_chunk, "_cache_size", None)  # a jitted function's cache size (JAX >= 0.4.x)
    return int(size()) if size is not None else 0


def _give_back_to_os() -> None:
    # glibc keeps freed arenas (compiles churn through them); malloc_trim returns them.
    name = ctypes.util.find_library("c")
    if name and "libc" in name:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
        if trim is not None:
            trim(0)


def bound_programs(most: int) -> None:
    """Drop JAX's in-memory program caches once they hold more than ``most`` programs; return freed
    memory."""
    held = _programs_in_memory()
    if held > most:
        log.info("program_caches_dropped", programs=held)
        jax.clear_caches()
        forget_in_memory()
    _give_back_to_os()
