"""How many of a population's programs train at once."""

from __future__ import annotations

import os
from pathlib import Path

import jax

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>", or "max <period>"


def _cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a container's CPU quota."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere every core counts
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit readable: the affinity stands
    return max(1, cores)


def training_lanes(configured: int | None) -> int:
    """``configured``, or one program per core on a CPU and one on an accelerator (whose programs
    already fill it; side by side they would only queue)."""
    if configured:
        return configured
    if jax.default_backend() != "cpu":
        return 1
    return _cores()
