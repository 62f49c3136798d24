"""Time from `POST /v1/jobs` to `running` with an idle worker, over real HTTP, Postgres and Redis.

Starts its own throwaway Postgres database, one `celery worker` process and `tuneforge serve`
(API only), submits N one-epoch train jobs one after another (each waits for the worker to be
idle again), and prints p50/min/max of: the POST itself, created_at -> started_at as the server
recorded it, and POST -> `running` as a polling client sees it.

    .venv/bin/python bench/submit_latency.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
from sklearn.datasets import load_breast_cancer

ADMIN_PG = os.environ.get("TUNEFORGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TUNEFORGE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    db = f"tuneforge_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    data_dir = Path(tempfile.mkdtemp(prefix="tuneforge-bench-"))
    env = os.environ | {
        "TUNEFORGE_DATABASE_URL": ADMIN_PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        + f"/{db}",
        "TUNEFORGE_BROKER_URL": REDIS_URL,
        "TUNEFORGE_DATA_DIR": str(data_dir),
        "TUNEFORGE_QUEUE": f"bench-{secrets.token_hex(4)}",
    }
    tf = [sys.executable, "-m", "api.cli"]
    subprocess.run([*tf, "migrate"], env=env, check=True, capture_output=True)
    key = subprocess.run(
        [*tf, "keys", "create", "--tenant", "bench"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    port = _free_port()
    log = (data_dir / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*tf, "worker", "--concurrency", "1"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    api = subprocess.Popen([*tf, "serve", "--port", str(port)], env=env)
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        for _ in range(200):
            try:
                if (
                    client.get("/readyz").status_code == 200
                    and b" ready." in (data_dir / "worker.log").read_bytes()
                ):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        csv = data_dir / "bc.csv"
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
    finally:
        api.terminate()
        worker.terminate()
        api.wait(timeout=30)
        worker.wait(timeout=60)
        with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
