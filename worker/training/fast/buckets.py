"""Split a population into a few programs so little compute goes to padding (each costs one compile)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.spec import JobSpec

MAX_PROGRAMS = 3  # more programs mean more compiles (seconds each on a CPU, cached on disk after)
# Another program is worth its compile when it saves more training time than the compile takes.
COMPILE_S = 10.0  # one program's trace and compile on a CPU: 8-25 s measured on 2 cores (deeper: more)
MACS_PER_S = 5e9  # multiply-adds a second these small padded networks sustain on a CPU (cautious)
# Programs are padded to a few sizes, so searches (and populations of one search) with different
# trials compile the same programs: a compile costs seconds on a CPU, a cached program nothing.
# Coarse on purpose: doubling a width costs less on a CPU than compiling another program for a small
# network; large data splits programs instead.
DEPTHS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
# The member count is part of a program's shapes too: a population is filled up with idle members.
MEMBERS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def _rung(value: int, ladder: tuple[int, ...]) -> int:
    """The smallest size of the ladder that holds ``value`` (past its top: the next multiple of it)."""
    top = ladder[-1]
    return next((size for size in ladder if size >= value), -(-value // top) * top)


def padded_depth(depth: int) -> int:
    """How many hidden layers a program holding a network ``depth`` deep is built with."""
    return _rung(depth, DEPTHS)


def padded_width(width: int) -> int:
    """How many units a program holding layers ``width`` wide gives each hidden layer."""
    return _rung(width, WIDTHS)


def padded_members(count: int) -> int:
    """How many members a program training ``count`` runs is built for (the rest never train)."""
    return _rung(count, MEMBERS)


def program_size(specs: Sequence[JobSpec]) -> tuple[int, int]:
    """Hidden layers, and units per hidden layer, of a program holding ``specs`` (padded to the ladders).

    One width for every layer: a program is then named by a few numbers, so searches with different
    trials meet programs already compiled (and its deeper layers run as one loop, see network.py).
    """
    depth = max(len(s.model.layers) for s in specs)
    width = max((layer.units for s in specs for layer in s.model.layers), default=1)
    return padded_depth(depth), padded_width(width)


def _padded(values: np.ndarray, ladder: tuple[int, ...]) -> np.ndarray:
    """``_rung`` of every value at once."""
    steps = np.asarray(ladder)
    inside = steps[np.minimum(np.searchsorted(steps, values), len(steps) - 1)]
    return np.where(values <= steps[-1], inside, -(-values // steps[-1]) * steps[-1])


def split_by_shape(specs: Sequence[JobSpec], n_features: int, *, rows: int) -> list[list[int]]:
    """Indices of ``specs`` grouped into at most MAX_PROGRAMS programs, each a run of similar shapes:
    as many as pay for their compile in padding they avoid (on ``rows`` training rows)."""
    order = sorted(
        range(len(specs)),
        key=lambda i: (len(specs[i].model.layers), max((u.units for u in specs[i].model.layers), default=0)),
    )
    n = len(order)
    depths = np.array([len(specs[i].model.layers) for i in order])
    widths = np.array([max((u.units for u in specs[i].model.layers), default=1) for i in order])
    # best[k][j]: cheapest padded cost of the first j members in k programs (contiguous in shape order).
    # Each program's cost is counted as ``program_size`` pads it: multiply-adds per row, every hidden
    # layer as wide as the widest, times its padded member count. Whole columns at once: a GPU
    # population of a thousand members is split in a second (one member at a time took minutes).
    best = np.full((MAX_PROGRAMS + 1, n + 1), np.inf)
    cut = np.zeros((MAX_PROGRAMS + 1, n + 1), int)
    best[0, 0] = 0.0
    for j in range(1, n + 1):
        # Programs holding order[i:j] for every i < j: sorted by depth, so the deepest is the last.
        depth = _padded(depths[j - 1 : j], DEPTHS)[0]
        width = _padded(np.maximum.accumulate(widths[:j][::-1])[::-1], WIDTHS)
        hidden = n_features * width + (depth - 1) * width * width if depth else np.zeros(j)
        cost = _padded(np.arange(j, 0, -1), MEMBERS) * (hidden + (width if depth else n_features))
        for k in range(1, MAX_PROGRAMS + 1):
            candidates = best[k - 1, :j] + cost
            i = int(np.argmin(candidates))
            best[k, j], cut[k, j] = candidates[i], i
    # Forward and backward passes: about three multiply-adds per weight, row and epoch.
    seconds_per_mac = 3 * rows * max(s.training.epochs for s in specs) / MACS_PER_S
    programs = min(range(1, MAX_PROGRAMS + 1), key=lambda k: best[k, n] * seconds_per_mac + k * COMPILE_S)
    groups, end = [], n
    for k in range(programs, 0, -1):
        start = int(cut[k, end])
        groups.append(sorted(order[start:end]))
        end = start
    return [g for g in reversed(groups) if g]
