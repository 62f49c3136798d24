"""Workers and the database failing under running work: it resumes from its checkpoint, nothing is lost
and nothing is written twice."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.faults.conftest import start
from tests.faults.services import Cluster, OwnPostgres, wait_until
from tests.support import submit, upload, wait_job

# Sized so the job trains for half a minute or more on a 2-core machine (a fast-engine epoch takes ~0.4 s),
# long enough to be hit mid-training, with checkpoints along the way.
ENGINES = {
    "fast": {"rows": 120_000, "batch_size": 8, "epochs": 90},
    "reference": {"rows": 12_000, "batch_size": 16, "epochs": 10},
}


def _dataset(folder: Path, rows: int) -> Path:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, 8))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    frame["label"] = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3] + rng.normal(0, 0.5, rows) > 0).astype(int)
    path = folder / f"faults-{rows}.csv"
    frame.to_csv(path, index=False)
    return path


def _submit_long_train(client: httpx.Client, folder: Path, engine: str) -> dict[str, Any]:
    size = ENGINES[engine]
    dataset = upload(client, _dataset(folder, size["rows"]))
    training = {
        "engine": engine,
        "epochs": size["epochs"],
        "batch_size": size["batch_size"],
        "early_stopping": None,
    }
    return submit(client, dataset["id"], "label", {"training": training})


def _holder_pid(client: httpx.Client, job_id: str) -> int:
    reasons = [e["reason"] or "" for e in client.get(f"/v1/jobs/{job_id}/events").json()]
    holders = [
        m.group(1) for r in reasons if (m := re.match(r"(?:claimed|taken over) by (?:\S+ )?\S+:(\d+)", r))
    ]
    return int(holders[-1])


def _wait_epoch(client: httpx.Client, job_id: str, epoch: int, timeout: float = 240) -> int:
    wait_until(
        lambda: client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= epoch,
        timeout=timeout,
        what=f"job {job_id} to reach epoch {epoch}",
    )
    return int(client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"])


def _assert_whole(client: httpx.Client, job: dict[str, Any], epochs: int) -> list[str]:
    """Succeeded with one model, every epoch exactly once; returns the job's event reasons."""
    assert job["status"] == "succeeded", job
    rows = client.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1)), "each epoch stored exactly once"
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert [t["status"] for t in trials] == ["completed"]
    assert job["best"]["model_id"] and client.get(f"/v1/models/{job['best']['model_id']}").status_code == 200
    return [e["reason"] or "" for e in client.get(f"/v1/jobs/{job['id']}/events").json()]


def _resumed_at(reasons: list[str]) -> int:
    found = [int(m.group(1)) for r in reasons if (m := re.search(r"resumed at epoch (\d+)", r))]
    assert found, f"no resume in the events: {reasons}"
    return found[-1]


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_kill_9_of_the_training_child_resumes_from_the_last_checkpoint(
    cluster: Cluster, tmp_path: Path, engine: str
) -> None:
    client = start(cluster)
    job = _submit_long_train(client, tmp_path, engine)
    at_kill = _wait_epoch(client, job["id"], 4)
    killed = time.monotonic()
    os.kill(_holder_pid(client, job["id"]), signal.SIGKILL)

    wait_until(
        lambda: any(
            "resumed at epoch" in (e["reason"] or "")
            for e in client.get(f"/v1/jobs/{job['id']}/events").json()
        ),
        timeout=float(cluster.env["TUNEFORGE_LEASE_TIMEOUT_S"]) + 10 + 60,  # + a fresh child's imports
        what="the job to be resumed",
    )
    picked_up_s = time.monotonic() - killed
    done = wait_job(client, job["id"], timeout=300)
    reasons = _assert_whole(client, done, ENGINES[engine]["epochs"])
    resumed = _resumed_at(reasons)
    assert resumed >= at_kill - 1, (
        f"killed at epoch {at_kill}, resumed at {resumed}: more than one epoch redone"
    )
    print(f"{engine}: killed at epoch {at_kill}, resumed at {resumed}, picked up after {picked_up_s:.1f} s")


def test_postgres_restarted_mid_job_the_job_still_succeeds(
    cluster: Cluster, own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    client = start(cluster, workers=1)
    job = _submit_long_train(client, tmp_path, "reference")
    _wait_epoch(client, job["id"], 3)
    own_postgres.stop("fast")
    time.sleep(3)
    own_postgres.start()
    done = wait_job(client, job["id"], timeout=300)
    _assert_whole(client, done, ENGINES["reference"]["epochs"])


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_sigterm_mid_epoch_exits_within_10_s_and_the_work_resumes_elsewhere(
    cluster: Cluster, tmp_path: Path
) -> None:
    client = start(cluster)
    job = _submit_long_train(client, tmp_path, "fast")
    at_signal = _wait_epoch(client, job["id"], 3)
    main_pid = _parent_of(_holder_pid(client, job["id"]))
    name = next(n for n, p in cluster.processes.items() if p.pid == main_pid)
    signalled = time.monotonic()
    cluster.kill(name, signal.SIGTERM)
    cluster.processes[name].wait(timeout=30)
    exited_s = time.monotonic() - signalled
    assert exited_s < 10, f"the worker took {exited_s:.1f} s to exit after SIGTERM"

    done = wait_job(client, job["id"], timeout=300)
    reasons = _assert_whole(client, done, ENGINES["fast"]["epochs"])
    assert any("handed back" in r for r in reasons), reasons
    assert _resumed_at(reasons) >= at_signal, "the checkpoint taken at hand-back was not used"
    assert done["attempt"] == 1, "a shutdown is not counted as a lost attempt"
    print(
        f"SIGTERM at epoch {at_signal}: worker exited in {exited_s:.1f} s, resumed at {_resumed_at(reasons)}"
    )
