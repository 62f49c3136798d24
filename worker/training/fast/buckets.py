"""Split a population into a few programs so little compute goes to padding (each costs one compile)."""

from __future__ import annotations

from collections.abc import Sequence

from models.spec import JobSpec

MAX_PROGRAMS = 3  # more programs mean more compiles (seconds each on a CPU, cached on disk after)
MIN_SAVING = 0.25  # an extra program must save at least this share of the padded compute


def step_cost(specs: Sequence[JobSpec], n_features: int) -> float:
    """Multiply-adds per row of one program holding ``specs``, padded to its deepest and widest member."""
    depth = max(len(s.model.layers) for s in specs)
    width = max((layer.units for s in specs for layer in s.model.layers), default=1)
    return len(specs) * (n_features * width + max(depth - 1, 0) * width * width + width)


def split_by_shape(specs: Sequence[JobSpec], n_features: int) -> list[list[int]]:
    """Indices of ``specs`` grouped into at most MAX_PROGRAMS programs, each a run of similar shapes."""
    order = sorted(
        range(len(specs)),
        key=lambda i: (len(specs[i].model.layers), max((u.units for u in specs[i].model.layers), default=0)),
    )
    n = len(order)

    def cost(a: int, b: int) -> float:
        return step_cost([specs[i] for i in order[a:b]], n_features)

    # best[k][j]: cheapest padded cost of the first j members in k programs (contiguous in shape order).
    best = [[float("inf")] * (n + 1) for _ in range(MAX_PROGRAMS + 1)]
    cut = [[0] * (n + 1) for _ in range(MAX_PROGRAMS + 1)]
    best[0][0] = 0.0
    for k in range(1, MAX_PROGRAMS + 1):
        for j in range(1, n + 1):
            for i in range(k - 1, j):
                value = best[k - 1][i] + cost(i, j)
                if value < best[k][j]:
                    best[k][j], cut[k][j] = value, i
    programs = 1
    for k in range(2, MAX_PROGRAMS + 1):
        if best[k][n] <= best[programs][n] * (1 - MIN_SAVING):
            programs = k
    groups, end = [], n
    for k in range(programs, 0, -1):
        start = cut[k][end]
        groups.append(sorted(order[start:end]))
        end = start
    return [g for g in reversed(groups) if g]
