"""Helpers for tests: data generation, an API client with a fresh tenant, polling."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sqlalchemy.orm import Session

from models.base import utcnow
from models.store import DatasetStore, JobStore, KeyStore
from models.tables import Dataset, Job

TERMINAL = {"succeeded", "failed", "cancelled"}
# The reference article's full search: the request at the end of API.md.
GUIDE_SEARCH: dict[str, Any] = {
    "search": {
        "max_trials": 10,
        "num_layers": {"int": [1, 10]},
        "layer": {
            "units": {"int": [8, 128], "step": 8},
            "activation": {"choice": ["relu", "tanh", "sigmoid"]},
            "dropout": {"choice": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
        },
    },
    "training": {"optimizer": {"choice": ["rmsprop", "adam", "sgd", "nadam", "adadelta"]}},
}


class ServiceUnavailable(RuntimeError):
    """A service a test needs did not come up."""


def generate_csvs(folder: Path) -> dict[str, Path]:
    """Write scikit-learn's datasets (and a mixed-type one) as CSV files."""
    files: dict[str, Path] = {}
    for name, loader in (
        ("breast_cancer", load_breast_cancer),
        ("iris", load_iris),
        ("diabetes", load_diabetes),
    ):
        path = folder / f"{name}.csv"
        loader(as_frame=True).frame.to_csv(path, index=False)
        files[name] = path
    rng = np.random.default_rng(7)
    n = 300
    mixed = pd.DataFrame(
        {"size": rng.normal(50, 10, n).round(2), "color": rng.choice(["red", "green", "blue"], n)}
    )
    mixed["label"] = np.where((mixed["size"] > 50) ^ (mixed["color"] == "red"), "yes", "no")
    mixed.loc[::9, "size"] = np.nan
    mixed.loc[::11, "color"] = ""
    files["mixed"] = folder / "mixed.csv"
    mixed.to_csv(files["mixed"], index=False)
    return files


def wait_for_worker_ready(process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Block until a celery worker's log says it is ready, or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if " ready." in text:
            return
        if process.poll() is not None:
            raise ServiceUnavailable(f"worker exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise ServiceUnavailable(f"worker not ready after {timeout} s:\n{text[-3000:]}")


def upload(client: httpx.Client, path: Path, **form: str) -> dict[str, Any]:
    """Upload a CSV and return the dataset, asserting 201."""
    with path.open("rb") as handle:
        response = client.post("/v1/datasets", files={"file": (path.name, handle, "text/csv")}, data=form)
    assert response.status_code == 201, response.text
    return dict(response.json())


def submit(
    client: httpx.Client, dataset_id: str, target: str, spec: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """Submit a train job and return it, asserting 202 + Location."""
    body = {"kind": "train", "dataset_id": dataset_id, "target": target, "spec": spec or {}}
    response = client.post("/v1/jobs", json=body | extra)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return dict(response.json())


def wait_job(
    client: httpx.Client, job_id: str, *, timeout: float = 300, until: set[str] = TERMINAL
) -> dict[str, Any]:
    """Poll a job until its status is in ``until``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")


def raw_rows(path: Path) -> pd.DataFrame:
    """A CSV's cells exactly as written (strings), as a user would send them."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def model_inputs(frame: pd.DataFrame, schema: dict[str, Any]) -> dict[str, Any]:
    """Build a downloaded model's input dict from raw cells, as the model card describes it."""
    import tensorflow as tf

    inputs: dict[str, Any] = {}
    for field in schema["inputs"]:
        cells = frame[field["column"]].tolist()
        if field["dtype"] == "numeric":
            values = [float(c) if c.strip() else np.nan for c in cells]
            inputs[field["input"]] = np.array(values, dtype="float32").reshape(-1, 1)
        else:
            inputs[field["input"]] = tf.constant(np.array(cells, dtype=str).reshape(-1, 1))
    return inputs


def placeholder_job(session: Session, tenant_prefix: str, *, kind: str, trials_total: int) -> Job:
    """A queued job of a fresh tenant on a dataset row with no file behind it (for tests of the job and
    trial rows straight in the database)."""
    tenant = KeyStore(session).ensure_tenant(f"{tenant_prefix}-{utcnow().timestamp()}")
    dataset = DatasetStore(session).add(
        Dataset(
            tenant_id=tenant.id,
            name="d",
            storage_key="datasets/none.csv",
            has_header=True,
            rows=1,
            columns=[],
            sha256="0" * 64,
            size_bytes=1,
        )
    )
    job = Job(
        tenant_id=tenant.id, kind=kind, dataset_id=dataset.id, target="y", spec={}, trials_total=trials_total
    )
    return JobStore(session).add(job)
