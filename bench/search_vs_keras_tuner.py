"""The guide's full search on Pima: tuneforge with 1 and 2 workers vs a plain keras-tuner script.

Same space (the request at the end of API.md), ``--trials`` trials, up to 50 epochs with early stopping
on val_loss (patience 10, best weights restored), the guide's split (test_size 0.2, random_state 1).
Every run is a new search: run k uses search seed k for both runners, so tuneforge meets trials (and
network shapes) it has not seen in that run. tuneforge runs against one service kept up for all runs,
as a deployment is (its compiled programs stay in memory and in the data folder's jax-cache); its first
search, which also pays the compiles of a fresh cache, is printed apart as "cold", and so are the next
``--warmup`` searches (seeds 100+), which still compile the program sizes they meet first; the measured
runs follow. keras-tuner runs in
one Python process for all runs (TensorFlow imported once). Prints trials/min (min/median/max over
``--runs``) and the best validation accuracy of each, under both runners' rules: keras-tuner scores a
trial by its best epoch's val_accuracy (``peak``, read off every epoch whatever weights are restored);
tuneforge by the val_accuracy of the weights it keeps (``kept``: early stopping's best val_loss epoch).
Each runner's figure is printed under both rules, so the comparison is like for like.

    .venv/bin/python bench/search_vs_keras_tuner.py [--csv PATH] [--trials 10] [--runs 3] [--workers 1 2]
        [--warmup 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster import cluster

PIMA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pima-indians-diabetes.csv"


def guide_search(trials: int, concurrent: int, seed: int = 1) -> dict[str, Any]:
    """The request at the end of API.md with the benchmark's epochs and split; ``seed``: the search's."""
    return {
        "split": {"validation_fraction": 0.2, "seed": 1, "stratify": False},
        "training": {
            "epochs": 50,
            "seed": seed,
            "optimizer": {"choice": ["rmsprop", "adam", "sgd", "nadam", "adadelta"]},
        },
        "search": {
            "max_trials": trials,
            "max_concurrent_trials": concurrent,
            "num_layers": {"int": [1, 10]},
            "layer": {
                "units": {"int": [8, 128], "step": 8},
                "activation": {"choice": ["relu", "tanh", "sigmoid"]},
                "dropout": {"choice": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
            },
        },
    }


Result = tuple[float, float, float, float]  # seconds, trials/min, best val accuracy: kept, peak


def through_service(csv: Path, *, workers: int, trials: int, seeds: list[int]) -> list[Result]:
    """(seconds, trials/min, best val accuracy kept and peak) of each search by one service, in order."""
    results = []
    with cluster(workers=workers) as client:
        dataset = client.post("/v1/datasets", files={"file": (csv.name, csv.read_bytes())}).json()
        for seed in seeds:
            body = {
                "kind": "search",
                "dataset_id": dataset["id"],
                "target": "Outcome",
                "spec": guide_search(trials, concurrent=workers, seed=seed),
            }
            started = time.monotonic()
            job = client.post("/v1/jobs", json=body).json()
            while (job := client.get(f"/v1/jobs/{job['id']}").json())["status"] not in {
                "succeeded",
                "failed",
                "cancelled",
            }:
                time.sleep(0.2)
            seconds = time.monotonic() - started
            assert job["status"] == "succeeded", job
            epochs = client.get(f"/v1/jobs/{job['id']}/metrics").json()
            peak = max(e["val_accuracy"] for e in epochs)
            results.append((seconds, trials / seconds * 60, job["best"]["metrics"]["val_accuracy"], peak))
    return results


def plain_keras_tuner(csv: Path, *, trials: int, seed: int = 1) -> Result:
    """(seconds, trials/min, best val accuracy kept and peak) of the guide's own keras-tuner script."""
    import keras
    import keras_tuner as kt
    import pandas as pd
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from worker.training.reference import guide_build

    frame = pd.read_csv(csv)
    x, y = frame.drop(columns="Outcome").to_numpy("float32"), frame["Outcome"].to_numpy()
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=1)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    with tempfile.TemporaryDirectory() as folder:
        tuner = kt.RandomSearch(
            guide_build(x.shape[1]), objective="val_accuracy", max_trials=trials, seed=seed, directory=folder
        )
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
        # keras-tuner deep-copies callbacks per trial; the lambdas (copied by reference) share this list.
        histories: list[list[dict[str, float]]] = []
        record = keras.callbacks.LambdaCallback(
            on_train_begin=lambda _: histories.append([]),
            on_epoch_end=lambda _, logs: histories[-1].append(dict(logs)),
        )
        started = time.monotonic()
        tuner.search(
            x_train, y_train, validation_data=(x_val, y_val), epochs=50, callbacks=[stop, record], verbose=0
        )
        seconds = time.monotonic() - started
        peak = tuner.oracle.get_best_trials(1)[0].score  # keras-tuner's own rule
        # The weights each trial keeps: early stopping's best val_loss epoch (ties to the earlier).
        kept = max(min(h, key=lambda e: e["val_loss"])["val_accuracy"] for h in histories)
    return seconds, trials / seconds * 60, float(kept), float(peak)


def main() -> None:
    """Run the searches and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", type=Path, default=PIMA)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    # A service that has run a few searches on data of this shape has compiled most program sizes a
    # population of this space needs (cached on disk, as a deployment's are across restarts).
    parser.add_argument(
        "--warmup", type=int, default=3, help="searches run (and printed) before the measured ones"
    )
    args = parser.parse_args()
    seeds = list(range(1, args.runs + 1))
    rows = {
        "plain keras-tuner (1 process)": [
            plain_keras_tuner(args.csv, trials=args.trials, seed=s) for s in seeds
        ]
    }
    for workers in args.workers:
        # Seed 0 first: the cold search (empty compile cache), reported on its own line; then the
        # warm-up searches (seeds of their own), reported apart too, then the measured ones.
        warmups = list(range(100, 100 + args.warmup))
        cold, *rest = through_service(
            args.csv, workers=workers, trials=args.trials, seeds=[0, *warmups, *seeds]
        )
        rows[f"tuneforge, {workers} worker(s), cold"] = [cold]
        if warmups:
            rows[f"tuneforge, {workers} worker(s), searches 2-{1 + len(warmups)}"] = rest[: len(warmups)]
        rows[f"tuneforge, {workers} worker(s)"] = rest[len(warmups) :]
    print(f"\nguide's full search on {args.csv.name}: {args.trials} trials, <= 50 epochs, early stopping")
    baseline = statistics.median(rate for _, rate, _, _ in rows["plain keras-tuner (1 process)"])
    print("best val acc: median over runs; kept = at the weights early stopping keeps, peak = best epoch")
    header = f"{'runner':<36} {'trials/min min/median/max':>26} {'x keras-tuner':>14}"
    print(f"{header} {'val acc kept':>13} {'val acc peak':>13}")
    for name, results in rows.items():
        rates = [rate for _, rate, _, _ in results]
        kept = statistics.median(k for _, _, k, _ in results)
        peak = statistics.median(p for _, _, _, p in results)
        spread = f"{min(rates):.1f}/{statistics.median(rates):.1f}/{max(rates):.1f}"
        ratio = statistics.median(rates) / baseline
        print(f"{name:<36} {spread:>26} {ratio:>14.1f} {kept:13.3f} {peak:13.3f}")
    # A best-of-10 accuracy moves by a validation row or two (0.0065 each) between runs: each run's own.
    print("\nper run, in order (trials/min, val acc kept/peak)")
    for name, results in rows.items():
        runs = "  ".join(f"{rate:.1f} {k:.3f}/{p:.3f}" for _, rate, k, p in results)
        print(f"{name:<36} {runs}")


if __name__ == "__main__":
    main()
