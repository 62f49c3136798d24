"""Population throughput of the fast engine on the guide's full space (run with KERAS_BACKEND=jax on a GPU).

Trains ``--population`` random members of the guide's space (depth 1-10, units 8-128 step 8, relu/tanh/
sigmoid, dropout 0.1-0.6, five optimizers) on Pima for 50 epochs with early stopping, as one vectorized
program, and prints trials/s beside plain keras-tuner's figure measured in the same run (--kt-trials).

    KERAS_BACKEND=jax .venv/bin/python bench/gpu_population.py [--population 1024] [--kt-trials 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
PIMA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pima-indians-diabetes.csv"


class Quiet:
    """A reporter that keeps nothing (throughput only)."""

    def on_epoch(self, *args: object) -> None: ...
    def on_epochs(self, *args: object) -> None: ...
    def should_stop(self) -> bool:
        return False

    def handing_back(self) -> bool:
        return False


def guide_member(rng: random.Random) -> dict:
    """One random point of the guide's space as a train spec."""
    layers = [
        {
            "units": rng.randrange(8, 129, 8),
            "activation": rng.choice(["relu", "tanh", "sigmoid"]),
            "dropout": rng.choice([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
        }
        for _ in range(rng.randint(1, 10))
    ]
    optimizer = rng.choice(["rmsprop", "adam", "sgd", "nadam", "adadelta"])
    return {
        "model": {"layers": layers},
        "split": {"stratify": False},
        "training": {"epochs": 50, "optimizer": optimizer},
    }


def population(csv: Path, size: int, seed: int) -> tuple[float, float]:
    """(trials/s, best val accuracy) of one population of ``size`` members."""
    from models.spec import resolve_spec
    from models.status import JobKind
    from models.tabular import parse_csv
    from worker.training.engines import Run
    from worker.training.train import train_runs

    columns = parse_csv(csv.read_bytes()).columns
    rng = random.Random(seed)
    specs = [
        resolve_spec(guide_member(rng), kind=JobKind.TRAIN, target="Outcome", columns=columns)
        for _ in range(size)
    ]
    started = time.monotonic()
    results = train_runs(
        csv_path=csv, has_header=True, target="Outcome", runs=[Run(s, Quiet(), None) for s in specs]
    )
    seconds = time.monotonic() - started
    return size / seconds, max(r.metrics.get("val_accuracy", 0.0) for r in results)


def main() -> None:
    """Cold and warm populations, then plain keras-tuner."""
    import jax

    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", type=Path, default=PIMA)
    parser.add_argument("--population", type=int, default=1024)
    parser.add_argument("--kt-trials", type=int, default=3)
    args = parser.parse_args()
    print("devices:", jax.devices())
    for label, seed in (("cold (compiles)", 1), ("warm", 2), ("warm", 3)):
        rate, best = population(args.csv, args.population, seed)
        print(f"fast engine, population {args.population} {label:<16} {rate:10.1f} trials/s  best {best:.3f}")
    if args.kt_trials:
        sys.path.insert(0, str(Path(__file__).parent))
        from search_vs_keras_tuner import plain_keras_tuner

        _, per_min, kept, peak = plain_keras_tuner(args.csv, trials=args.kt_trials)
        # "best" above is at the weights early stopping keeps: keras-tuner's own (peak epoch) beside it.
        print(
            f"plain keras-tuner, {args.kt_trials} trials: {per_min / 60:10.3f} trials/s  "
            f"best {kept:.3f} (peak epoch {peak:.3f})"
        )


if __name__ == "__main__":
    main()
