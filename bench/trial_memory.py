"""Memory per trial: one worker process trains 500 trials in a row (populations of 10, 5 epochs each).

Prints the process's RSS after the first population (backend, compiled programs and caches loaded) and
after the last, so the growth per trial shows without relying on recycling the process.

    .venv/bin/python bench/trial_memory.py [--trials 500] [--population 10]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
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
    from models.spec import resolve_spec
    from models.status import JobKind
    from models.tabular import parse_csv
    from worker.training.engines import Run
    from worker.training.train import train_runs

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--population", type=int, default=10)
    args = parser.parse_args()
    columns = parse_csv(PIMA.read_bytes()).columns
    rng = random.Random(0)
    first = None
    for done in range(0, args.trials, args.population):
        raw = [guide_member(rng) for _ in range(args.population)]
        for spec in raw:  # a fixed shape keeps this about memory, not compiles
            spec["model"]["layers"] = [{"units": 32, "activation": "relu", "dropout": 0.1}] * 2
            spec["training"]["epochs"] = 5
        specs = [resolve_spec(s, kind=JobKind.TRAIN, target="Outcome", columns=columns) for s in raw]
        train_runs(
            csv_path=PIMA, has_header=True, target="Outcome", runs=[Run(s, Quiet(), None) for s in specs]
        )
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


if __name__ == "__main__":
    main()
