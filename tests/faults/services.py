"""Processes a fault test owns: its own Redis and Postgres on spare ports, and a tuneforge cluster.

Only what these classes started is ever stopped or killed (by pid); the machine's shared Postgres
and Redis are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import redis

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/bin"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, *, timeout: float, what: str, every: float = 0.2) -> None:
    """Poll ``check()`` until it is truthy; fail the test (AssertionError) naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # not up yet
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class OwnRedis:
    """A redis-server this test started, on its own port; optionally with AOF persistence."""

    def __init__(self, folder: Path, *, appendonly: bool = False) -> None:
        self.folder, self.appendonly, self.port = folder, appendonly, free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) on the same port and wait until it answers."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--dir", str(self.folder), "--appendonly", "yes" if self.appendonly else "no"]
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.ping, timeout=20, what=f"redis on {self.port}")

    def ping(self) -> bool:
        """Whether it answers."""
        return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())

    def stop(self) -> None:
        """Kill it (SIGKILL: a crash, so nothing is flushed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


class OwnPostgres:
    """A PostgreSQL cluster this test created with initdb, on its own port and socket folder."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.data = folder / "pgdata"

    def _as_postgres(self, *command: str) -> subprocess.CompletedProcess[str]:
        # initdb and pg_ctl refuse to run as root.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        """Create the cluster (trust auth) and start it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "pg.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop it (``fast``: what ``pg_ctl restart -m fast`` does first; ``immediate``: a crash)."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for ``database``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop it for good (its folder goes with the test's tmp dir)."""
        with contextlib.suppress(subprocess.CalledProcessError):  # already down
            self.stop("immediate")


class Cluster:
    """tuneforge processes (API, workers, beat) started by the test with one environment."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.port = free_port()

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its children (the pool) die with it when we kill the group
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        """What a process wrote so far."""
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_api(self) -> None:
        """The API, waited for until /healthz answers."""
        self._start("api", "serve", "--port", str(self.port))
        wait_until(
            lambda: httpx.get(f"{self.base_url}/healthz").status_code == 200, timeout=60, what="the API"
        )

    @property
    def base_url(self) -> str:
        """Where the API listens."""
        return f"http://127.0.0.1:{self.port}"

    def start_worker(self, name: str) -> None:
        """A Celery worker (prefork, one child), waited for until it is ready."""
        self._start(name, "worker", "--name", f"{name}@%h")
        wait_until(lambda: " ready." in self.log(name), timeout=90, what=f"worker {name} to be ready")

    def start_beat(self) -> None:
        """The beat (the reaper's schedule)."""
        self._start("beat", "beat")

    def children(self, name: str) -> list[int]:
        """Pids of a process's children (a Celery worker's pool processes)."""
        out = subprocess.run(["pgrep", "-P", str(self.processes[name].pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process we started (not its group)."""
        self.processes[name].send_signal(sig)

    def kill_group(self, name: str) -> None:
        """SIGKILL a process and everything it started (a machine dying)."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        """End every process this cluster started."""
        for name in list(self.processes):
            self.kill_group(name)


@contextlib.contextmanager
def live_api(env: dict[str, str], log: Path) -> Iterator[str]:
    """A real ``tuneforge serve`` (uvicorn, real sockets) with ``env``; yields its base URL."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            env=os.environ | env,
            stdout=out,
            stderr=out,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, timeout=60, what="the API")
            yield base
        finally:
            server.terminate()
            server.wait(20)
