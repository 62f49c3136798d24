"""The main job end to end on the embedded default: start tuneforge, train, print metrics.

Runs `tuneforge serve` (SQLite + a local broker folder + workers, all under TUNEFORGE_DATA_DIR,
default ./tuneforge-data), uploads scikit-learn's breast cancer data, trains a model with the
default spec, predicts three raw rows, and prints the model's validation metrics.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer

sys.path.insert(0, str(Path(__file__).parent))
from local_server import local_server, wait_for_job


def main() -> None:
    """Serve, upload, train, wait, predict, print."""
    started = time.monotonic()
    data_dir = Path(os.environ.get("TUNEFORGE_DATA_DIR", "tuneforge-data")).resolve()
    csv = data_dir / "examples" / "breast_cancer.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
    with local_server(data_dir) as api:
        with csv.open("rb") as handle:
            dataset = api.post("/v1/datasets", files={"file": (csv.name, handle, "text/csv")})
        dataset.raise_for_status()
        print(f"dataset {dataset.json()['id']}: {dataset.json()['rows']} rows")
        body = {"kind": "train", "dataset_id": dataset.json()["id"], "target": "target", "spec": {}}
        job = api.post("/v1/jobs", json=body)
        job.raise_for_status()
        print(f"job {job.json()['id']} submitted")
        state = wait_for_job(api, job.json()["id"])
        if state["status"] != "succeeded":
            sys.exit(f"job {state['status']}: {state.get('error')}")
        best = state["best"]
        assert isinstance(best, dict)
        metrics, model_id = best["metrics"], best["model_id"]
        model_file = data_dir / "examples" / f"{model_id}.keras"
        model_file.write_bytes(api.get(f"/v1/models/{model_id}/download").content)
        print(f"model {model_id} saved to {model_file}")
        rows = pd.read_csv(csv, dtype=str).drop(columns="target").head(3).to_dict("records")
        predicted = api.post(f"/v1/models/{model_id}/predict", json={"rows": rows}, timeout=120)
        predicted.raise_for_status()
        for row, prediction in zip(rows, predicted.json()["predictions"], strict=True):
            print(f"  mean radius {row['mean radius']}: {prediction['label']} {prediction['probabilities']}")
        print(f"validation accuracy: {metrics['val_accuracy']:.4f}")
        print(f"validation AUC:      {metrics['val_auc']:.4f}")
        print(f"validation loss:     {metrics['val_loss']:.4f}")
        print(f"wall time: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
