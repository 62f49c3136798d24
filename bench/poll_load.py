"""Polling load: many concurrent clients GET /v1/jobs/{id} while a search runs on the worker.

Starts a throwaway cluster (Postgres, Redis, one worker, the API), submits the guide's search, then
runs ``--clients`` threads issuing GETs for ``--seconds``; prints requests/s and latency percentiles.

    .venv/bin/python bench/poll_load.py [--clients 32] [--seconds 15]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import httpx
from cluster import cluster
from search_vs_keras_tuner import PIMA, guide_search


def main() -> None:
    """Submit a search, hammer its status endpoint, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", type=Path, default=PIMA)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    with cluster(workers=1) as client:
        dataset = client.post("/v1/datasets", files={"file": (args.csv.name, args.csv.read_bytes())}).json()
        body = {
            "kind": "search",
            "dataset_id": dataset["id"],
            "target": "Outcome",
            "spec": guide_search(30, 1),
        }
        job = client.post("/v1/jobs", json=body).json()
        url, headers = f"{str(client.base_url).rstrip('/')}/v1/jobs/{job['id']}", dict(client.headers)
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def poll() -> None:
            mine, bad = [], 0
            with httpx.Client(headers=headers, timeout=30) as http:
                while time.monotonic() < stop_at:
                    started = time.monotonic()
                    if http.get(url).status_code != 200:
                        bad += 1
                    mine.append(time.monotonic() - started)
            with lock:
                latencies.extend(mine)
                errors[0] += bad

        threads = [threading.Thread(target=poll) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        status = client.get(f"/v1/jobs/{job['id']}").json()["status"]
        client.post(f"/v1/jobs/{job['id']}/cancel")  # so the worker stops promptly at teardown
        time.sleep(5)
    cuts = statistics.quantiles(latencies, n=100)
    print(f"\nGET /v1/jobs/{{id}}, {args.clients} clients, {args.seconds:.0f} s, search {status} meanwhile")
    print(f"requests/s {len(latencies) / args.seconds:.0f}  errors {errors[0]}")
    print(f"latency ms: p50 {cuts[49] * 1000:.1f}  p90 {cuts[89] * 1000:.1f}  p99 {cuts[98] * 1000:.1f}")


if __name__ == "__main__":
    main()
