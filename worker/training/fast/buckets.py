"""Split a population into a few programs so little compute goes to padding (each costs one compile)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from models.spec import JobSpec
from worker.training.fast.programs import Size

# Shapes a population is cut into: more programs mean more compiles (seconds each on a CPU, cached on
# disk after). Balancing the lanes may halve these into up to MAX_PROGRAMS programs per lane.
MAX_PROGRAMS = 3
# Another program is worth its compile when it saves more training time than the compile takes.
COMPILE_S = 10.0  # one program's trace and compile on a CPU: 8-25 s measured on 2 cores (deeper: more)
# A program compiled to balance the lanes serves the searches after this one too (cached on disk): its
# compile is counted as shared by this many populations. Counted whole, a population with one deep group
# kept it whole, one core idle, in every later search (the half was never compiled, so never known).
REUSES = 3
# What a program costs beyond its multiply-adds (start, final evaluation, results to the host): on
# small data, many small programs are no faster than one.
PROGRAM_S = 0.5
MACS_PER_S = 5e9  # multiply-adds a second these small padded networks sustain on a CPU (cautious)
# Programs are padded to a few sizes, so searches (and populations of one search) with different
# trials compile the same programs: a compile costs seconds on a CPU, a cached program nothing.
# Coarse on purpose: doubling a width costs less on a CPU than compiling another program for a small
# network; large data splits programs instead. 5 and 10 are rungs: the guide's space goes to 10 layers
# (padded to 12 they cost a fifth more).
DEPTHS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32)
WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
# The member count is part of a program's shapes too: a population is filled up with idle members.
MEMBERS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def _padded(values: np.ndarray, ladder: tuple[int, ...]) -> np.ndarray:
    """The smallest size of the ladder that holds each value (past its top: the next multiple of it).

    One width for every hidden layer of a program: a program is then named by a few numbers, so
    searches with different trials meet programs already compiled (and its deeper layers run as one
    loop, see network.py).
    """
    steps = np.asarray(ladder)
    inside = steps[np.minimum(np.searchsorted(steps, values), len(steps) - 1)]
    return np.where(values <= steps[-1], inside, -(-values // steps[-1]) * steps[-1])


def _macs(depth: np.ndarray, width: np.ndarray, members: np.ndarray, n_features: int) -> np.ndarray:
    """Multiply-adds per row of programs of these sizes (every hidden layer as wide as ``width``)."""
    hidden = np.where(depth > 0, n_features * width + np.maximum(depth - 1, 0) * width * width, 0)
    return members * (hidden + np.where(depth > 0, width, n_features))


def split_by_shape(
    specs: Sequence[JobSpec],
    n_features: int,
    *,
    rows: int,
    compiled: Iterable[Size] = (),
    lanes: int = 1,
) -> list[tuple[list[int], Size]]:
    """Indices of ``specs`` grouped into programs, each a run of similar shapes, with the size of the
    program each runs in, the longest first: at most MAX_PROGRAMS shapes, as many as pay for their
    compile in padding they avoid (on ``rows`` training rows); a group may run in a larger program
    already ``compiled`` when that padding costs less than compiling its own. With ``lanes`` programs
    training at once (one per core), the cut is the one that finishes soonest on them (not the least work),
    and the longest group may be halved, and a half again (see _balanced)."""
    order = sorted(
        range(len(specs)),
        key=lambda i: (len(specs[i].model.layers), max((u.units for u in specs[i].model.layers), default=0)),
    )
    n = len(order)
    depths = np.array([len(specs[i].model.layers) for i in order])
    widths = np.array([max((u.units for u in specs[i].model.layers), default=1) for i in order])
    # Forward and backward passes: about three multiply-adds per weight, row and epoch.
    seconds_per_mac = 3 * rows * max(s.training.epochs for s in specs) / MACS_PER_S
    known_sizes = set(compiled)
    known = np.array(sorted(known_sizes), int).reshape(-1, 3)
    known_seconds = _macs(known[:, 0], known[:, 1], known[:, 2], n_features) * seconds_per_mac

    def programs_ending_at(j: int) -> tuple[np.ndarray, np.ndarray]:
        """For every i < j: the seconds a program holding order[i:j] costs, and its size."""
        deepest = depths[j - 1]  # sorted by depth: the last member is the deepest
        widest = np.maximum.accumulate(widths[:j][::-1])[::-1]
        count = np.arange(j, 0, -1)
        depth = _padded(np.full(j, deepest), DEPTHS)
        size = np.stack([depth, _padded(widest, WIDTHS), _padded(count, MEMBERS)], axis=1)
        is_known = (size[:, None, :] == known[None, :, :]).all(axis=2).any(axis=1)
        seconds = _macs(size[:, 0], size[:, 1], size[:, 2], n_features) * seconds_per_mac
        seconds += np.where(is_known, 0.0, COMPILE_S)
        if len(known):
            # A larger program already compiled holds the group too (a linear group: only linear ones).
            fits = (
                (known[None, :, 0] >= deepest)
                & ((known[None, :, 0] == 0) == (deepest == 0))
                & (known[None, :, 1] >= widest[:, None])
                & (known[None, :, 2] >= count[:, None])
            )
            padded_into = np.where(fits, known_seconds[None, :], np.inf)
            choice = padded_into.argmin(axis=1)
            into = padded_into[np.arange(j), choice]
            better = into < seconds
            size[better] = known[choice[better]]
            seconds = np.where(better, into, seconds)
        return seconds, size

    # Contiguous cuts in shape order, whole columns at once (a GPU population of a thousand members is
    # split in a second). total[k][j]: the fewest seconds for the first j members in k programs, all
    # counted; longest[k][j]: the shortest longest program. On one lane the first finishes soonest; on
    # more, programs train side by side, and a cut that evens them out can finish far sooner for a
    # little more work (the guide's space: 6 deep members and 4 shallow ones kept one core busy for 7 s
    # and the other for 2 s).
    total = np.full((MAX_PROGRAMS + 1, n + 1), np.inf)
    longest = np.full((MAX_PROGRAMS + 1, n + 1), np.inf)
    cut_total = np.zeros((MAX_PROGRAMS + 1, n + 1), int)
    cut_longest = np.zeros((MAX_PROGRAMS + 1, n + 1), int)
    total[0, 0] = longest[0, 0] = 0.0
    for j in range(1, n + 1):
        seconds, _ = programs_ending_at(j)
        for k in range(1, MAX_PROGRAMS + 1):
            candidates = total[k - 1, :j] + seconds
            i = int(np.argmin(candidates))
            total[k, j], cut_total[k, j] = candidates[i], i
            candidates = np.maximum(longest[k - 1, :j], seconds)
            i = int(np.argmin(candidates))
            longest[k, j], cut_longest[k, j] = candidates[i], i

    def cut_into(cut: np.ndarray, programs: int) -> list[tuple[list[int], Size]]:
        """The groups (indices and program size) of the cut into ``programs`` programs."""
        groups, end = [], n
        for k in range(programs, 0, -1):
            start = int(cut[k, end])
            if start < end:
                size = programs_ending_at(end)[1][start]
                groups.append((sorted(order[start:end]), (int(size[0]), int(size[1]), int(size[2]))))
            end = start
        return groups

    def train_seconds(size: Size) -> float:
        depth, width, members = (np.array([v]) for v in size)
        return float(_macs(depth, width, members, n_features)[0] * seconds_per_mac)

    def finishing(groups: list[tuple[list[int], Size]]) -> float:
        """When these programs finish on the lanes, their new sizes' compiles added (counted whole: a
        cut that compiles a size this population alone needs, to even out the lanes, seldom pays)."""
        new_sizes = {size for _, size in groups} - known_sizes
        durations = [PROGRAM_S + train_seconds(size) for _, size in groups]
        return _finishing(durations, lanes) + len(new_sizes) * COMPILE_S

    least_work = _balanced(
        cut_into(cut_total, min(range(1, MAX_PROGRAMS + 1), key=lambda k: total[k, n])),
        lanes,
        train_seconds,
        known_sizes,
    )
    if lanes <= 1:
        return least_work
    evened = [
        _balanced(cut_into(cut_longest, k), lanes, train_seconds, known_sizes)
        for k in range(2, MAX_PROGRAMS + 1)
        if np.isfinite(longest[k, n])
    ]
    # The soonest to finish; of those, the fewest programs (ties: the least work, listed first).
    return min([least_work, *evened], key=lambda groups: (finishing(groups), len(groups)))


def _finishing(seconds: list[float], lanes: int) -> float:
    """When programs of these durations finish on ``lanes`` lanes, the longest started first."""
    loads = [0.0] * lanes
    for duration in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += duration
    return max(loads)


def _balanced(
    groups: list[tuple[list[int], Size]], lanes: int, seconds: Callable[[Size], float], known: set[Size]
) -> list[tuple[list[int], Size]]:
    """``groups`` the longest first, the longest halved into two programs of one size (one compile for
    both) while that makes the population finish sooner on ``lanes`` lanes, compile included.

    Programs of a population train side by side, one per lane (core): a population with one deep
    group would otherwise leave the other cores idle while it trains.
    """
    groups = list(groups)
    while lanes > 1 and len(groups) < MAX_PROGRAMS * lanes:
        cost = [seconds(size) for _, size in groups]
        longest = int(np.argmax(cost))
        indices, (depth, width, _) = groups[longest]
        if len(indices) < 2:
            break
        middle = -(-len(indices) // 2)
        half: Size = (depth, width, int(_padded(np.array([middle]), MEMBERS)[0]))
        compile_s = 0.0 if half in known or half in {size for _, size in groups} else COMPILE_S / REUSES
        after = [c for i, c in enumerate(cost) if i != longest] + [seconds(half)] * 2
        if _finishing(after, lanes) + compile_s >= _finishing(cost, lanes):
            break
        groups[longest : longest + 1] = [(indices[:middle], half), (indices[middle:], half)]
    return sorted(groups, key=lambda group: -seconds(group[1]))
