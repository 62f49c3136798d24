"""The guide's headline figures through the service: Pima's 10-10-1 network with and without normalization.

Uploads ../shared/data/pima-indians-diabetes.csv to an embedded `tuneforge serve`, trains the guide's
10-10-1 ReLU network with Adam on the guide's split (test_size 0.2, random_state 1, not stratified),
with standard normalization and with none, over several training seeds, and prints a table.

    .venv/bin/python bench/seed_figures.py [--seeds 1 2 3] [--csv PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from local_server import local_server, wait_for_job  # noqa: E402

NOT_MEASURED = ("Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI")
PIMA = ROOT.parent / "shared" / "data" / "pima-indians-diabetes.csv"
VARIANTS = {
    "standard, early stopping": {"preprocessing": {"normalization": "standard"}},
    "none, early stopping": {"preprocessing": {"normalization": "none"}},
    "standard, 100 epochs": {
        "preprocessing": {"normalization": "standard"},
        "training": {"early_stopping": None},
    },
    "none, 100 epochs": {"preprocessing": {"normalization": "none"}, "training": {"early_stopping": None}},
    # Beyond the guide: Pima's 0 means "not measured" in these columns; impute them instead.
    "standard + zeros imputed": {
        "preprocessing": {
            "normalization": "standard",
            "missing_values": {
                c: [0] for c in ("Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI")
            },
        }
    },
}


def _spec(variant: dict[str, dict[str, object]], seed: int) -> dict[str, object]:
    training = {"seed": seed, "epochs": 100, **variant.get("training", {})}
    return {
        "split": {"validation_fraction": 0.2, "seed": 1, "stratify": False},
        "model": {"layers": [{"units": 10, "activation": "relu"}, {"units": 10, "activation": "relu"}]},
        "preprocessing": variant["preprocessing"],
        "training": training,
    }


def main() -> None:
    """Run every variant and seed through the service and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--csv", type=Path, default=PIMA)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuneforge-seed-") as folder, local_server(Path(folder)) as api:
        with args.csv.open("rb") as handle:
            dataset = api.post("/v1/datasets", files={"file": (args.csv.name, handle, "text/csv")}).json()
        rows = []
        for name, variant in VARIANTS.items():
            accuracies, epochs, flags, started = [], [], set(), time.monotonic()
            for seed in args.seeds:
                body = {
                    "kind": "train",
                    "dataset_id": dataset["id"],
                    "target": "Outcome",
                    "spec": _spec(variant, seed),
                }
                job = wait_for_job(api, api.post("/v1/jobs", json=body).json()["id"], show_progress=False)
                assert job["status"] == "succeeded", job
                trial = api.get(f"/v1/jobs/{job['id']}/trials").json()[0]
                accuracies.append(trial["metrics"]["final"]["val_accuracy"])
                epochs.append(trial["metrics"]["epochs_run"])
                flags |= {f["flag"] for f in trial["diagnostics"]["flags"]}
            per_job = (time.monotonic() - started) / len(args.seeds)
            rows.append((name, accuracies, epochs, flags, per_job))
    print(f"\nPima, 10-10-1 ReLU + Adam, split test_size=0.2 random_state=1; training seeds {args.seeds}")
    print(
        f"{'normalization, stopping':<27} {'val acc mean':>12} {'min':>6} {'max':>6}"
        f" {'epochs':>8} {'s/job':>6}  flags"
    )
    for name, accuracies, epochs, flags, per_job in rows:
        print(
            f"{name:<27} {statistics.mean(accuracies):12.3f} {min(accuracies):6.3f} {max(accuracies):6.3f}"
            f" {statistics.median(epochs):8.0f} {per_job:6.1f}  {', '.join(sorted(flags)) or '-'}"
        )


if __name__ == "__main__":
    main()
