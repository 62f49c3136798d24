"""A throwaway tuneforge cluster for benchmarks: a Postgres database, Redis, N workers and the API."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

ADMIN_PG = os.environ.get("TUNEFORGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TUNEFORGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Compiled training programs persist across the clusters of one benchmark run, as they do across a
# deployment's restarts (its data folder keeps them): the first run pays the compiles.
JAX_CACHE = Path(tempfile.mkdtemp(prefix="tuneforge-bench-jax-"))
TUNEFORGE = [sys.executable, "-m", "api.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(client: httpx.Client, logs: list[Path]) -> bool:
    try:
        api_ready = client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False
    return api_ready and all(log.exists() and b" ready." in log.read_bytes() for log in logs)


@contextmanager
def cluster(*, workers: int = 1) -> Iterator[httpx.Client]:
    """An authenticated client of a fresh API with ``workers`` worker processes (concurrency 1 each)."""
    db = f"tuneforge_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    data_dir = Path(tempfile.mkdtemp(prefix="tuneforge-bench-"))
    base = ADMIN_PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    env = os.environ | {
        "TUNEFORGE_DATABASE_URL": f"{base}/{db}",
        "TUNEFORGE_BROKER_URL": REDIS_URL,
        "TUNEFORGE_DATA_DIR": str(data_dir),
        "TUNEFORGE_QUEUE": f"bench-{secrets.token_hex(4)}",
        "JAX_COMPILATION_CACHE_DIR": str(JAX_CACHE),
        # Load generators poll far past a user's per-key limit on purpose.
        "TUNEFORGE_RATE_LIMIT_READS": "10000000/minute",
    }
    subprocess.run([*TUNEFORGE, "migrate"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [*TUNEFORGE, "keys", "create", "--tenant", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    port = _free_port()
    logs = [data_dir / f"worker-{i}.log" for i in range(workers)]
    processes = [
        subprocess.Popen(
            [*TUNEFORGE, "worker", "--name", f"worker-{i}@%h"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i, log in enumerate(logs)
    ]
    processes.append(subprocess.Popen([*TUNEFORGE, "serve", "--port", str(port)], env=env))
    try:
        headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
            deadline = time.monotonic() + 120
            while not _ready(client, logs):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not become ready")
                time.sleep(0.2)
            yield client
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
