"""The main job end to end on the embedded default: start tuneforge, train, print metrics.

Runs `tuneforge serve` (SQLite + a local broker folder + one worker, all under
TUNEFORGE_DATA_DIR, default ./tuneforge-data), uploads scikit-learn's breast cancer data,
trains a model with the default spec, and prints its validation metrics.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
from sklearn.datasets import load_breast_cancer


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until the server answers /readyz."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"tuneforge serve exited with code {server.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    sys.exit("tuneforge did not become ready in time")


def main() -> None:
    """Serve, upload, train, wait, print."""
    data_dir = Path(os.environ.get("TUNEFORGE_DATA_DIR", "tuneforge-data")).resolve()
    csv = data_dir / "examples" / "breast_cancer.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ | {"TUNEFORGE_DATA_DIR": str(data_dir)}
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], env=env)
    started = time.monotonic()
    try:
        wait_ready(base, server)
        key = (data_dir / "api_key").read_text().strip()
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        with csv.open("rb") as handle:
            dataset = api.post("/v1/datasets", files={"file": (csv.name, handle, "text/csv")})
        dataset.raise_for_status()
        print(f"dataset {dataset.json()['id']}: {dataset.json()['rows']} rows")
        job = api.post(
            "/v1/jobs",
            json={"kind": "train", "dataset_id": dataset.json()["id"], "target": "target", "spec": {}},
        )
        job.raise_for_status()
        job_id = job.json()["id"]
        print(f"job {job_id} submitted")
        while True:
            response = api.get(f"/v1/jobs/{job_id}")
            state = response.json()
            if state["status"] in {"succeeded", "failed", "cancelled"}:
                break
            progress = state["progress"]
            print(f"  {state['status']}: epoch {progress['epoch']}/{progress['epochs']}", flush=True)
            time.sleep(float(response.headers.get("Retry-After", "1")))
        if state["status"] != "succeeded":
            sys.exit(f"job {state['status']}: {state.get('error')}")
        metrics = state["best"]["metrics"]
        model_id = state["best"]["model_id"]
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
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
