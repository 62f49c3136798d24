"""One train job of the guide's 10-10-1 network: the fast engine vs a plain model.fit script, same run.

Pima, 100 epochs, batch 32, Adam, early stopping off (so both run every epoch); then a generated
500,000-row, 20-column binary dataset for 3 epochs. Each side runs ``--runs`` times; prints
min/median/max seconds and the speed-up. The fast side trains through the worker's own code
(``worker.training.train.run_training``, warm process), the plain side is what a user writes.

    .venv/bin/python bench/train_vs_fit.py [--runs 3] [--big-rows 500000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
PIMA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pima-indians-diabetes.csv"


def plain_fit(csv: Path, target: str, epochs: int) -> tuple[float, float]:
    """(seconds, val accuracy) of the guide's script: StandardScaler, 10-10-1, model.fit."""
    import keras
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    started = time.monotonic()
    frame = pd.read_csv(csv)
    x, y = frame.drop(columns=target).to_numpy("float32"), frame[target].to_numpy()
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=1, stratify=y)
    scaler = StandardScaler().fit(x_train)
    model = keras.Sequential(
        [
            keras.Input(shape=(x.shape[1],)),
            keras.layers.Dense(10, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(10, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", keras.metrics.AUC()])
    history = model.fit(
        scaler.transform(x_train),
        y_train,
        validation_data=(scaler.transform(x_val), y_val),
        epochs=epochs,
        batch_size=32,
        verbose=0,
    )
    return time.monotonic() - started, float(history.history["val_accuracy"][-1])


def fast_engine(csv: Path, target: str, epochs: int) -> tuple[float, float]:
    """(seconds, val accuracy) of tuneforge's worker code on the same job, model file saved."""
    from models.spec import resolve_spec
    from models.status import JobKind
    from models.tabular import parse_csv
    from worker.training.data import forget_parsed
    from worker.training.train import run_training

    class Quiet:
        def on_epoch(self, *args: object) -> None: ...
        def on_epochs(self, *args: object) -> None: ...
        def should_stop(self) -> bool:
            return False

        def handing_back(self) -> bool:
            return False

    # The API resolves the spec against the upload's profile at submit time: not part of training.
    table = parse_csv(csv.read_bytes())
    spec = resolve_spec(
        {"training": {"epochs": epochs, "early_stopping": None}},
        kind=JobKind.TRAIN,
        target=target,
        columns=table.columns,
    )
    forget_parsed()  # each run parses its file, as a job's first look at a dataset does
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        result = run_training(
            csv_path=csv,
            has_header=True,
            target=target,
            spec=spec,
            reporter=Quiet(),
            model_path=Path(folder) / "m.keras",
        )
    return time.monotonic() - started, float(result.metrics["val_accuracy"])


def through_service(csv: Path, target: str, epochs: int, runs: int) -> list[float]:
    """Seconds from POST /v1/jobs to `succeeded` with a warm worker (one job first to warm it). Each job
    trains on a dataset uploaded just before (not timed): the worker parses it for the first time, as
    it would a new dataset; a job on a dataset the worker parsed last skips that parse."""
    sys.path.insert(0, str(Path(__file__).parent))
    from cluster import cluster

    spec = {"training": {"epochs": epochs, "early_stopping": None}}
    seconds = []
    with cluster(workers=1) as client:
        for attempt in range(runs + 1):
            started = time.monotonic()
            dataset = client.post("/v1/datasets", files={"file": (csv.name, csv.read_bytes())}).json()
            if not attempt:
                print(f"upload of {csv.stat().st_size / 1e6:.0f} MB: {time.monotonic() - started:.2f} s")
            started = time.monotonic()
            job = client.post(
                "/v1/jobs",
                json={"kind": "train", "dataset_id": dataset["id"], "target": target, "spec": spec},
            ).json()
            while (job := client.get(f"/v1/jobs/{job['id']}").json())["status"] not in {
                "succeeded",
                "failed",
            }:
                time.sleep(0.05)
            assert job["status"] == "succeeded", job
            if attempt:  # the first job warms the worker (imports, compile)
                seconds.append(time.monotonic() - started)
    return seconds


def big_csv(rows: int, folder: Path) -> Path:
    """A generated binary dataset: 20 numeric columns, a noisy linear boundary."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 20)).astype("float32")
    y = (x @ rng.normal(size=20) + rng.normal(size=rows) > 0).astype(int)
    path = folder / "big.csv"
    pd.DataFrame(x, columns=[f"x{i}" for i in range(20)]).assign(label=y).to_csv(path, index=False)
    return path


def compare(name: str, csv: Path, target: str, epochs: int, runs: int) -> None:
    """Run both sides ``runs`` times, then the job through the service, and print the table."""
    rows = {"plain model.fit": [plain_fit(csv, target, epochs) for _ in range(runs)]}
    rows["tuneforge fast engine"] = [fast_engine(csv, target, epochs) for _ in range(runs)]
    print(f"\n{name}: 10-10-1, {epochs} epochs, batch 32 ({runs} runs each; first fast run includes compile)")
    print(f"{'runner':<24} {'min s':>7} {'median s':>9} {'max s':>7} {'val acc':>8}")
    for runner, results in rows.items():
        seconds = [s for s, _ in results]
        print(
            f"{runner:<24} {min(seconds):7.2f} {statistics.median(seconds):9.2f} {max(seconds):7.2f} "
            f"{results[-1][1]:8.3f}"
        )
    ratio = statistics.median(s for s, _ in rows["plain model.fit"]) / statistics.median(
        s for s, _ in rows["tuneforge fast engine"]
    )
    print(f"speed-up (median): {ratio:.1f}x")
    served = through_service(csv, target, epochs, runs)
    plain = statistics.median(s for s, _ in rows["plain model.fit"])
    print(
        f"through the service, POST to succeeded (warm worker, Postgres + Redis, closing evaluation and "
        f"baselines included): min {min(served):.2f} s, median {statistics.median(served):.2f} s, "
        f"max {max(served):.2f} s = 1/{plain / statistics.median(served):.1f} of the plain script"
    )


def main() -> None:
    """Pima, then the generated large dataset."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-rows", type=int, default=500_000)
    args = parser.parse_args()
    compare("Pima (614 training rows)", PIMA, "Outcome", 100, args.runs)
    if args.big_rows:
        with tempfile.TemporaryDirectory() as folder:
            compare(
                f"generated ({args.big_rows:,} rows)",
                big_csv(args.big_rows, Path(folder)),
                "label",
                3,
                args.runs,
            )


if __name__ == "__main__":
    main()
