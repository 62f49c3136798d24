"""Fault-test fixtures: a Postgres and a Redis of the test's own, and tuneforge processes to kill."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing
from tests.faults.services import PG_BIN, Cluster, OwnPostgres, OwnRedis

# Short enough that a lost worker is noticed within a test, long enough for a slow CI machine.
FAULT_SETTINGS = {
    "TUNEFORGE_LEASE_TIMEOUT_S": "8",
    "TUNEFORGE_HEARTBEAT_INTERVAL_S": "1",
    "TUNEFORGE_REDISPATCH_AFTER_S": "4",
    "TUNEFORGE_REAP_INTERVAL_S": "2",
    # Every epoch of these jobs is checkpointed (an epoch takes about a second).
    "TUNEFORGE_CHECKPOINT_EVERY_S": "0.5",
}


def _missing(what: str) -> None:
    missing(f"{what} is not installed; fault tests start their own")


@pytest.fixture(scope="session")
def own_postgres() -> Iterator[OwnPostgres]:
    """A Postgres cluster of the fault tests' own (restarting it touches nobody else)."""
    if not (PG_BIN / "initdb").exists():
        _missing("PostgreSQL's initdb")
    # Not under pytest's tmp folder: that is private to root, and Postgres runs as its own user.
    folder = Path(tempfile.mkdtemp(prefix="tuneforge-fault-pg-"))
    postgres = OwnPostgres(folder)
    postgres.init()
    yield postgres
    postgres.destroy()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis of this test's own, without persistence (a restart loses every message)."""
    if shutil.which("redis-server") is None:
        _missing("redis-server")
    server = OwnRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(own_postgres: OwnPostgres, own_redis: OwnRedis, tmp_path: Path) -> Iterator[Cluster]:
    """Environment and process handles for this test; the test starts what it needs."""
    database = own_postgres.create_database(f"tuneforge_fault_{secrets.token_hex(4)}")
    data_dir = tmp_path / "data"
    env = (
        os.environ
        | FAULT_SETTINGS
        | {
            "TUNEFORGE_DATABASE_URL": database,
            "TUNEFORGE_BROKER_URL": own_redis.url,
            "TUNEFORGE_DATA_DIR": str(data_dir),
            "TUNEFORGE_QUEUE": f"tuneforge-fault-{secrets.token_hex(4)}",
        }
    )
    command = [sys.executable, "-m", "api.cli"]
    subprocess.run([*command, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    key = subprocess.run(
        [*command, "keys", "create", "--tenant", "faults"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    processes = Cluster(env | {"TUNEFORGE_TEST_API_KEY": key}, tmp_path)
    yield processes
    processes.stop_all()


def start(cluster: Cluster, workers: int = 2) -> httpx.Client:
    """Start the API, ``workers`` workers (worker-a, worker-b, ...) and beat; a client of the API."""
    cluster.start_api()
    for i in range(workers):
        cluster.start_worker(f"worker-{'abcdefgh'[i]}")
    cluster.start_beat()
    return api(cluster)


def api(cluster: Cluster, timeout: float = 30) -> httpx.Client:
    """An authenticated client of the cluster's API."""
    headers = {"Authorization": f"Bearer {cluster.env['TUNEFORGE_TEST_API_KEY']}"}
    return httpx.Client(base_url=cluster.base_url, headers=headers, timeout=timeout)
