"""A train job end to end through Postgres, Redis and a real Celery worker process."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.model_selection import train_test_split

from tests.support import model_inputs, raw_rows, submit, upload, wait_job

pytestmark = pytest.mark.integration


def _validation_rows(path: Path, target: str, seed: int, fraction: float) -> Any:
    """Reproduce the service's documented split: stratified train_test_split with the seed."""
    frame = raw_rows(path)
    y = frame[target]
    _, val = train_test_split(frame, test_size=fraction, random_state=seed, stratify=y)
    return val


def test_train_job_succeeds_with_metrics_and_a_model_that_predicts_raw_rows(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path], tmp_path: Path
) -> None:
    """Upload, submit with the default spec, poll to succeeded, download and predict raw rows."""
    dataset = upload(client, csvs["breast_cancer"])
    assert dataset["rows"] == 569 and len(dataset["columns"]) == 31
    job = submit(client, dataset["id"], "target")
    assert job["status"] == "queued"
    assert job["spec"]["model"]["layers"] == [{"units": 10, "activation": "relu", "dropout": 0.0}] * 2
    assert job["spec"]["task"] == "binary"
    # Sized to the data: 455 training rows in batches of 32 are 15 steps an epoch; 200 make 3,000.
    assert job["spec"]["training"]["epochs"] == 200
    assert job["spec"]["training"]["early_stopping"]["patience"] == 20

    done = wait_job(client, job["id"], timeout=300)
    assert done["status"] == "succeeded", done
    assert done["best"]["metrics"]["val_accuracy"] >= 0.95
    events = client.get(f"/v1/jobs/{job['id']}/events").json()
    assert [(e["from"], e["to"]) for e in events] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "running"),  # the note naming the engine
        ("running", "succeeded"),
    ]
    assert events[2]["reason"].startswith("training on the fast engine")

    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert len(trials) == 1 and trials[0]["status"] == "completed"
    assert trials[0]["worker"].split()[0] == "worker-1"  # then "host:pid", the lease holder
    epochs_run = trials[0]["metrics"]["epochs_run"]
    series = client.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert [row["epoch"] for row in series] == list(range(1, epochs_run + 1))
    for row in series:
        assert {"loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc", "lr"} <= set(row)
    assert done["progress"] == {"trials_done": 1, "trials_total": 1, "epoch": epochs_run, "epochs": 200}

    card = client.get(f"/v1/models/{done['best']['model_id']}").json()
    download = client.get(f"/v1/models/{card['id']}/download")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == card["sha256"]
    path = tmp_path / "model.keras"
    path.write_bytes(download.content)
    model = keras.saving.load_model(path, safe_mode=True)

    val = _validation_rows(csvs["breast_cancer"], "target", seed=1, fraction=0.2)
    probabilities = model.predict(model_inputs(val, card["input_schema"]), verbose=0).reshape(-1)
    labels = np.array(card["input_schema"]["classes"])[(probabilities > 0.5).astype(int)]
    accuracy = float(np.mean(labels.astype(str) == val["target"].to_numpy()))
    assert accuracy == pytest.approx(card["metrics"]["val_accuracy"], abs=1e-6)


def test_a_held_out_test_split_and_baselines_are_reported_beside_validation(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """spec.evaluation: the model is scored once on rows it never saw; baselines on the same split."""
    dataset = upload(client, csvs["breast_cancer"])
    spec = {"training": {"epochs": 30}, "evaluation": {"test_fraction": 0.25}}
    job = wait_job(client, submit(client, dataset["id"], "target", spec)["id"], timeout=300)
    assert job["status"] == "succeeded", job
    best = job["best"]
    assert (best["objective"], best["direction"]) == ("val_loss", "min")
    assert best["score"] == best["metrics"]["val_loss"]
    assert best["test_rows"] == 143  # ceil(0.25 * 569), split off before validation
    assert best["metrics"]["train_rows"] + best["metrics"]["val_rows"] == 569 - 143
    assert 0.85 <= best["test"]["test_accuracy"] <= 1.0 and "test_auc" in best["test"]
    for name in ("linear", "boosted_trees"):
        assert {"val_accuracy", "test_accuracy"} <= set(best["baselines"][name])
    assert isinstance(best["flags"], list)
    card = client.get(f"/v1/models/{best['model_id']}").json()
    assert card["metrics"]["test_accuracy"] == best["test"]["test_accuracy"]
