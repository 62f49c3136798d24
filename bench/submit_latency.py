"""Time from `POST /v1/jobs` to `running` with an idle worker, over real HTTP, Postgres and Redis.

Starts a throwaway cluster (Postgres database, one `celery worker` process, `tuneforge serve`),
submits N one-epoch train jobs one after another (each waits for the worker to be idle again), and
prints p50/min/max of: the POST itself, created_at -> started_at as the server recorded it, and
POST -> `running` as a polling client sees it.

    .venv/bin/python bench/submit_latency.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from cluster import cluster
from sklearn.datasets import load_breast_cancer


def _summary(name: str, values_ms: list[float]) -> str:
    return (
        f"{name:<34} p50 {statistics.median(values_ms):7.1f} ms   min {min(values_ms):7.1f}"
        f"   max {max(values_ms):7.1f}   (n={len(values_ms)})"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    with cluster(workers=1) as client, tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "bc.csv"
        load_breast_cancer(as_frame=True).frame.to_csv(csv, index=False)
        dataset = client.post("/v1/datasets", files={"file": ("bc.csv", csv.read_bytes())}).json()
        body = {
            "kind": "train",
            "dataset_id": dataset["id"],
            "target": "target",
            "spec": {"training": {"epochs": 1}},
        }
        post_ms, server_ms, client_ms = [], [], []
        for i in range(args.jobs + 1):
            started = time.perf_counter()
            job = client.post("/v1/jobs", json=body).json()
            posted = time.perf_counter()
            while (state := client.get(f"/v1/jobs/{job['id']}").json())["status"] == "queued":
                pass
            seen_running = time.perf_counter()
            while state["status"] not in {"succeeded", "failed", "cancelled"}:
                time.sleep(0.05)
                state = client.get(f"/v1/jobs/{job['id']}").json()
            assert state["status"] == "succeeded", state
            if i == 0:
                continue  # warm-up: the worker child's first TensorFlow import
            created = datetime.fromisoformat(state["created_at"])
            running = datetime.fromisoformat(state["started_at"])
            post_ms.append((posted - started) * 1000)
            server_ms.append((running - created).total_seconds() * 1000)
            client_ms.append((seen_running - started) * 1000)
    print(f"{args.jobs} jobs, one idle worker (prefork, concurrency 1), Postgres + Redis")
    print(_summary("POST /v1/jobs response", post_ms))
    print(_summary("created_at -> started_at (server)", server_ms))
    print(_summary("POST -> client sees running", client_ms))


if __name__ == "__main__":
    main()
