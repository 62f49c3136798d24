"""Memory per trial: one worker process trains 500 trials in a row (populations of 10, 5 epochs each).

Prints the process's RSS after the first population (backend, compiled programs and caches loaded) and
after the last, so the growth per trial shows without relying on recycling the process. With
``--shapes varied`` each population has its own depth (1-10, in turn): the worker then meets more program
sizes than it keeps in memory (``TUNEFORGE_PROGRAMS_IN_MEMORY``), so the growth includes that bound
filling up and being dropped, and each population's seconds show the reloads.

    .venv/bin/python bench/trial_memory.py [--trials 500] [--population 10] [--shapes fixed|varied]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

# As in a worker (worker/runtime.py): compiled programs also persist on disk, so programs dropped from
# memory (worker/training/fast/memory.py) reload instead of recompiling.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="tuneforge-bench-jax-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_population import PIMA, Quiet, guide_member


def rss_mb() -> float:
    """Current resident set size in MB (from /proc, so it can shrink as well as grow)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def main() -> None:
    """Train the trials in populations and print RSS as it goes."""
    from models.settings import Settings
    from models.spec import resolve_spec
    from models.status import JobKind
    from models.tabular import parse_csv
    from worker.training.engines import Run
    from worker.training.train import train_runs

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--shapes", choices=["fixed", "varied"], default="fixed")
    args = parser.parse_args()
    settings = Settings()
    print(f"shapes {args.shapes}; programs kept in memory: {settings.programs_in_memory}")
    columns = parse_csv(PIMA.read_bytes()).columns
    rng = random.Random(0)
    first = met_all = None
    seconds: list[float] = []
    for done in range(0, args.trials, args.population):
        raw = [guide_member(rng) for _ in range(args.population)]
        # A fixed shape keeps this about memory, not compiles; varied, about the programs kept too.
        depth = 2 if args.shapes == "fixed" else 1 + (done // args.population) % 10
        for spec in raw:
            spec["model"]["layers"] = [{"units": 32, "activation": "relu", "dropout": 0.1}] * depth
            spec["training"]["epochs"] = 5
        specs = [resolve_spec(s, kind=JobKind.TRAIN, target="Outcome", columns=columns) for s in raw]
        started = time.monotonic()
        train_runs(
            csv_path=PIMA, has_header=True, target="Outcome", runs=[Run(s, Quiet(), None) for s in specs]
        )
        seconds.append(time.monotonic() - started)
        if len(seconds) == 10:
            met_all = rss_mb()
        if first is None:
            first = rss_mb()
            print(f"after {done + args.population} trials: {first:.0f} MB")
        elif (done + args.population) % 100 == 0:
            print(f"after {done + args.population} trials: {rss_mb():.0f} MB")
    assert first is not None
    growth = rss_mb() - first
    print(
        f"growth over {args.trials - args.population} trials: {growth:.1f} MB "
        f"({growth / max(args.trials - args.population, 1) * 1000:.0f} KB per trial)"
    )
    warm = seconds[10:]  # every depth compiled once by then (varied shapes cycle through 10)
    if warm and met_all is not None:
        print(f"growth after population 10 (every size met): {rss_mb() - met_all:.1f} MB")
        print(
            f"seconds per population after the first 10: median {statistics.median(warm):.2f}, "
            f"max {max(warm):.2f}"
        )


if __name__ == "__main__":
    main()
