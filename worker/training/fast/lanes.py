"""How many of a population's programs train at once."""

from __future__ import annotations

import os

import jax


def training_lanes(configured: int | None) -> int:
    """``configured``, or one program per core this process may use on a CPU and one on an accelerator
    (whose programs already fill it; side by side they would only queue)."""
    if configured:
        return configured
    if jax.default_backend() != "cpu":
        return 1
    return max(1, len(os.sched_getaffinity(0)))
