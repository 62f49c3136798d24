"""Polling load: many concurrent clients GET /v1/jobs/{id} while a search runs on the worker.

Starts a throwaway cluster (Postgres, Redis, one worker, the API with ``--api-workers`` processes),
submits the guide's search, then lets wrk (a C load generator: ``apt-get install wrk``; a Python one
would eat the CPU it measures) hold ``--clients`` connections for ``--seconds``, ``--runs`` times.
Prints requests/s and latency percentiles, min/median/max over the runs.

    .venv/bin/python bench/poll_load.py [--clients 32] [--seconds 10] [--runs 3] [--api-workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cluster import cluster
from search_vs_keras_tuner import PIMA, guide_search

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, authorization: str, *, clients: int, seconds: float) -> dict[str, float]:
    """One wrk run: requests/s, p50, p99 (ms) and non-2xx/socket errors."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{clients}",
            f"-d{seconds:.0f}s",
            "--latency",
            "-H",
            f"Authorization: {authorization}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    if "99" not in latency:
        raise RuntimeError(f"wrk printed no latencies:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout):?\s+(\d+)", out))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "errors": errors,
    }


def measure(
    csv: Path, *, api_workers: int, clients: int, seconds: float, runs: int
) -> list[dict[str, float]]:
    """Runs of wrk against one job's status while that search trains."""
    os.environ["TUNEFORGE_API_WORKERS"] = str(api_workers)
    with cluster(workers=1) as client:
        dataset = client.post("/v1/datasets", files={"file": (csv.name, csv.read_bytes())}).json()
        body = {
            "kind": "search",
            "dataset_id": dataset["id"],
            "target": "Outcome",
            "spec": guide_search(300, 1),
        }
        job = client.post("/v1/jobs", json=body).json()
        url = f"{str(client.base_url).rstrip('/')}/v1/jobs/{job['id']}"
        while client.get(url).json()["status"] == "queued":
            time.sleep(0.2)
        results = [
            wrk(url, client.headers["Authorization"], clients=clients, seconds=seconds) for _ in range(runs)
        ]
        status = client.get(url).json()["status"]
        assert status == "running", f"the search was {status}, not running, during the load"
        client.post(f"{url}/cancel")  # so the worker stops promptly at teardown
        time.sleep(3)
    return results


def main() -> None:
    """Measure each API process count, print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", type=Path, default=PIMA)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("poll_load needs wrk: apt-get install wrk")
    rows = {
        n: measure(args.csv, api_workers=n, clients=args.clients, seconds=args.seconds, runs=args.runs)
        for n in args.api_workers
    }
    print(
        f"\nGET /v1/jobs/{{id}} while a search runs: {args.clients} connections,"
        f" {args.seconds:.0f} s x {args.runs}"
    )
    print(
        f"{'API processes':<14} {'requests/s min/med/max':>24} {'p50 ms (median)':>16}"
        f" {'p99 ms min/med/max':>22} {'errors':>7}"
    )
    for n, results in rows.items():
        rps = sorted(r["rps"] for r in results)
        p99 = sorted(r["p99"] for r in results)
        p50 = statistics.median(r["p50"] for r in results)
        errors = sum(int(r["errors"]) for r in results)
        print(
            f"{n:<14} {f'{rps[0]:.0f}/{statistics.median(rps):.0f}/{rps[-1]:.0f}':>24} {p50:16.1f}"
            f" {f'{p99[0]:.0f}/{statistics.median(p99):.0f}/{p99[-1]:.0f}':>22} {errors:>7}"
        )


if __name__ == "__main__":
    main()
