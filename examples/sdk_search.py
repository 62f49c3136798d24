"""The guide's full hyperparameter search with the Python SDK alone (pip install ./sdk).

    python examples/sdk_search.py data.csv --target Outcome [--max-trials 10] [--async]

Reads TUNEFORGE_BASE_URL and TUNEFORGE_API_KEY (or an embedded server's tuneforge-data/api_key).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
from pathlib import Path
from typing import Any

from tuneforge_client import AsyncClient, Client, Job, Trial


def guide_search(max_trials: int) -> dict[str, Any]:
    """The request at the end of API.md."""
    return {
        "search": {
            "max_trials": max_trials,
            "num_layers": {"int": [1, 10]},
            "layer": {
                "units": {"int": [8, 128], "step": 8},
                "activation": {"choice": ["relu", "tanh", "sigmoid"]},
                "dropout": {"choice": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
            },
        },
        "training": {"optimizer": {"choice": ["rmsprop", "adam", "sgd", "nadam", "adadelta"]}},
    }


def first_rows(path: Path, target: str, count: int = 3) -> list[dict[str, str]]:
    """Raw rows of the CSV, without the target, as a service that predicts would send them."""
    with path.open(newline="") as handle:
        return [
            {k: v for k, v in row.items() if k != target}
            for row in itertools.islice(csv.DictReader(handle), count)
        ]


def report(job: Job, trials: list[Trial], predictions: list[dict[str, Any]]) -> None:
    """Print the leaderboard and the predictions."""
    print(f"search {job.id}: {job.status}, best {job.best['score'] if job.best else None}")
    print("rank  trial  score   hyperparameters")
    ranked = sorted(trials, key=lambda t: (t.score is None, -(t.score or 0.0)))
    for rank, trial in enumerate(ranked, 1):
        score = f"{trial.score:.4f}" if trial.score is not None else trial.status
        print(f"{rank:>4}  {trial.number:>5}  {score:<7} {trial.hyperparameters}")
    for prediction in predictions:
        print("prediction:", prediction)


def run(path: Path, target: str, max_trials: int) -> None:
    """Upload, search, wait with progress, leaderboard, predict: synchronously."""
    with Client() as client:
        dataset = client.datasets.upload(path)
        job = client.jobs.search(dataset.id, target, guide_search(max_trials)).wait()
        assert job.best is not None
        predictions = client.models.predict(job.best["model_id"], first_rows(path, target))
        report(job, client.jobs.trials(job.id), predictions)


async def run_async(path: Path, target: str, max_trials: int) -> None:
    """The same with AsyncClient."""
    async with AsyncClient() as client:
        dataset = await client.datasets.upload(path)
        job = await (await client.jobs.search(dataset.id, target, guide_search(max_trials))).wait()
        assert job.best is not None
        predictions = await client.models.predict(job.best["model_id"], first_rows(path, target))
        report(job, await client.jobs.trials(job.id), predictions)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", type=Path)
    parser.add_argument("--target", required=True)
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args()
    if args.use_async:
        asyncio.run(run_async(args.csv, args.target, args.max_trials))
    else:
        run(args.csv, args.target, args.max_trials)
