"""The guide's full search on Pima: tuneforge with 1 and 2 workers vs a plain keras-tuner script.

Same space (the request at the end of API.md), ``--trials`` trials, up to 50 epochs with early stopping
on val_loss (patience 10, best weights restored), the guide's split (test_size 0.2, random_state 1).
Every run is a new search: run k uses search seed k for both runners, so tuneforge meets trials (and
network shapes) it has not seen in that run. tuneforge runs against one service kept up for all runs,
as a deployment is (its compiled programs stay in memory and in the data folder's jax-cache); its first
search, which also pays the compiles of a fresh cache, is printed apart as "cold". keras-tuner runs in
one Python process for all runs (TensorFlow imported once). Prints trials/min (min/median/max over
``--runs``) and the best validation accuracy of each.

    .venv/bin/python bench/search_vs_keras_tuner.py [--csv PATH] [--trials 10] [--runs 3] [--workers 1 2]
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


def through_service(
    csv: Path, *, workers: int, trials: int, seeds: list[int]
) -> list[tuple[float, float, float]]:
    """(seconds, trials/min, best val accuracy) of each search run by one tuneforge service, in order."""
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
            results.append((seconds, trials / seconds * 60, job["best"]["metrics"]["val_accuracy"]))
    return results


def plain_keras_tuner(csv: Path, *, trials: int, seed: int = 1) -> tuple[float, float, float]:
    """(seconds, trials/min, best val accuracy) of the guide's own keras-tuner script."""
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
        started = time.monotonic()
        tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=50, callbacks=[stop], verbose=0)
        seconds = time.monotonic() - started
        best = tuner.oracle.get_best_trials(1)[0].score
    return seconds, trials / seconds * 60, float(best)


def main() -> None:
    """Run the searches and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", type=Path, default=PIMA)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    seeds = list(range(1, args.runs + 1))
    rows = {
        "plain keras-tuner (1 process)": [
            plain_keras_tuner(args.csv, trials=args.trials, seed=s) for s in seeds
        ]
    }
    for workers in args.workers:
        # Seed 0 first: the cold search (empty compile cache), reported on its own line.
        cold, *warm = through_service(args.csv, workers=workers, trials=args.trials, seeds=[0, *seeds])
        rows[f"tuneforge, {workers} worker(s), cold"] = [cold]
        rows[f"tuneforge, {workers} worker(s)"] = warm
    print(f"\nguide's full search on {args.csv.name}: {args.trials} trials, <= 50 epochs, early stopping")
    baseline = statistics.median(rate for _, rate, _ in rows["plain keras-tuner (1 process)"])
    print(f"{'runner':<36} {'trials/min min/median/max':>26} {'x keras-tuner':>14} {'best val acc':>13}")
    for name, results in rows.items():
        rates = [rate for _, rate, _ in results]
        best = statistics.median(b for _, _, b in results)
        spread = f"{min(rates):.1f}/{statistics.median(rates):.1f}/{max(rates):.1f}"
        print(f"{name:<36} {spread:>26} {statistics.median(rates) / baseline:>14.1f} {best:13.3f}")


if __name__ == "__main__":
    main()
