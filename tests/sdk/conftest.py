"""A real tuneforge API served over HTTP (uvicorn in a thread) for the SDK to talk to."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from api.embedded import create_key
from api.main import create_app
from models.settings import Settings
from tests.integration.conftest import settings_from

ROOT = Path(__file__).resolve().parents[2]


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture(scope="session")
def live_settings(server_env: dict[str, str]) -> Settings:
    """Settings whose queue no worker consumes: jobs stay queued, which these tests want."""
    return settings_from(server_env, queue=f"{server_env['TUNEFORGE_QUEUE']}-sdk")


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The app for ``settings`` served by uvicorn on a free port, for as long as the block runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def base_url(live_settings: Settings, redis_url: str) -> Iterator[str]:
    """The API publishing to a queue nobody consumes, served for the session."""
    with serving(live_settings) as url:
        yield url
    redis.Redis.from_url(redis_url).delete(live_settings.queue)


@pytest.fixture
def api_key(live_settings: Settings) -> str:
    """A key of a brand-new tenant."""
    return create_key(live_settings, f"sdk-{secrets.token_hex(6)}")


@pytest.fixture(scope="session")
def working_base_url(server_env: dict[str, str]) -> Iterator[str]:
    """The API publishing to the queue the session's real worker consumes."""
    with serving(settings_from(server_env)) as url:
        yield url


@pytest.fixture(scope="session")
def client_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install ./sdk` and nothing else."""
    venv = tmp_path_factory.mktemp("client-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT / "sdk")], check=True, timeout=300)
    return python
