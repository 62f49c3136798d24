"""Shared fixtures: a throwaway Postgres database, a Redis queue, real worker processes."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from api.embedded import worker_command
from tests.support import generate_csvs, wait_for_worker_ready

ADMIN_PG = os.environ.get("TUNEFORGE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TUNEFORGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(message: str) -> None:
    """Fail under CI=true (a missing service must never pass as a skip), skip otherwise."""
    if IN_CI:
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def _unavailable(what: str, exc: Exception) -> None:
    missing(f"{what} is unreachable ({exc}); start it (see README) to run integration tests")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh Postgres database at Alembic head, dropped at the end of the session."""
    from models.migrate import upgrade_to_head

    name = f"tuneforge_test_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(ADMIN_PG, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    base = ADMIN_PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    upgrade_to_head(url)
    yield url
    with psycopg.connect(ADMIN_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis broker, checked reachable."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def server_env(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """TUNEFORGE_* variables shared by the in-process API and the worker processes."""
    return {
        "TUNEFORGE_DATABASE_URL": pg_url,
        "TUNEFORGE_BROKER_URL": redis_url,
        "TUNEFORGE_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        # A queue of our own, so parallel runs on one Redis never steal each other's tasks.
        "TUNEFORGE_QUEUE": f"tuneforge-test-{secrets.token_hex(4)}",
        "TUNEFORGE_HEARTBEAT_INTERVAL_S": "1",
    }


def start_worker(
    env: dict[str, str],
    name: str,
    log: Path,
    extra: dict[str, str] | None = None,
    *,
    queue: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a real ``celery worker`` process and wait until it consumes."""
    full_env = os.environ | env | {"TUNEFORGE_WORKER_NAME": name} | (extra or {})
    command = worker_command(
        queue=queue or env["TUNEFORGE_QUEUE"],
        concurrency=1,
        beat=False,
        data_dir=log.parent,
        name=f"{name}@%h",
    )
    handle = log.open("wb")
    process = subprocess.Popen(command, env=full_env, stdout=handle, stderr=subprocess.STDOUT)
    wait_for_worker_ready(process, log)
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a child process, forcefully if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def worker(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """One real Celery worker process on the session's queue."""
    log = tmp_path_factory.mktemp("logs") / "worker-1.log"
    process = start_worker(server_env, "worker-1", log)
    yield process
    stop_process(process)


@pytest.fixture(scope="session")
def predictor(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A real prediction worker process on the session's predict queue."""
    log = tmp_path_factory.mktemp("logs") / "predictor.log"
    queue = f"{server_env['TUNEFORGE_QUEUE']}.predict"
    process = start_worker(server_env, "predictor", log, queue=queue)
    yield process
    stop_process(process)


@pytest.fixture(scope="session")
def csvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CSV files generated from datasets scikit-learn ships (never ../shared)."""
    return generate_csvs(tmp_path_factory.mktemp("csv"))
