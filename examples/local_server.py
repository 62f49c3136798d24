"""Start `tuneforge serve` in the background for a script, and stop it (and its workers) after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


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


@contextmanager
def local_server(data_dir: Path) -> Iterator[httpx.Client]:
    """An authenticated client of a `tuneforge serve` (embedded unless TUNEFORGE_* say otherwise)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ | {"TUNEFORGE_DATA_DIR": str(data_dir)}
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], env=env)
    try:
        wait_ready(base, server)
        key = (data_dir / "api_key").read_text().strip()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            yield client
    finally:
        server.terminate()
        server.wait(timeout=60)


def wait_for_job(client: httpx.Client, job_id: str, *, show_progress: bool = True) -> dict[str, object]:
    """Poll a job, honouring Retry-After, until it is finished."""
    while True:
        response = client.get(f"/v1/jobs/{job_id}")
        state: dict[str, object] = response.json()
        if state["status"] in {"succeeded", "failed", "cancelled"}:
            return state
        if show_progress:
            progress = state["progress"]
            assert isinstance(progress, dict)
            print(f"  {state['status']}: epoch {progress['epoch']}/{progress['epochs']}", flush=True)
        time.sleep(float(response.headers.get("Retry-After", "1")))
