"""Raw-row predictions through the API and the downloaded file; diagnostics served by the API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.settings import Settings
from tests.support import submit, upload, wait_job

pytestmark = pytest.mark.integration

RAW_ROWS = [
    {"size": 62.5, "color": "red"},
    {"size": "38.0", "color": "green"},
    {"size": "", "color": "blue"},  # blank number: imputed inside the model
    {"size": 55, "color": ""},  # blank category: the out-of-vocabulary slot
    {"size": None, "color": None},
    {"color": "purple"},  # a colour never seen and a missing column
]


def _file_inputs(rows: list[dict[str, object]], schema: dict[str, object]) -> dict[str, object]:
    """What a user feeds the downloaded model: one named input per column, as the card says."""
    import tensorflow as tf

    inputs: dict[str, object] = {}
    for field in schema["inputs"]:  # type: ignore[attr-defined]
        cells = [row.get(field["column"]) for row in rows]
        if field["dtype"] == "numeric":
            values = [float(c) if c not in (None, "") else np.nan for c in cells]
            inputs[field["input"]] = np.array(values, dtype="float32").reshape(-1, 1)
        else:
            inputs[field["input"]] = tf.constant([[str(c) if c is not None else ""] for c in cells])
    return inputs


def test_categorical_model_predicts_raw_rows_like_its_downloaded_file(
    client: TestClient,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    csvs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Strings and blanks in, the same probabilities out of POST /predict and of the .keras file."""
    dataset = upload(client, csvs["mixed"])
    assert {c["name"]: c["dtype"] for c in dataset["columns"]} == {
        "size": "numeric",
        "color": "categorical",
        "label": "categorical",
    }
    job = wait_job(client, submit(client, dataset["id"], "label", {"training": {"epochs": 60}})["id"])
    assert job["status"] == "succeeded", job
    assert job["best"]["metrics"]["val_accuracy"] >= 0.8
    model_id = job["best"]["model_id"]

    response = client.post(f"/v1/models/{model_id}/predict", json={"rows": RAW_ROWS})
    assert response.status_code == 200, response.text
    served = response.json()["predictions"]
    assert len(served) == len(RAW_ROWS)
    assert all(p["label"] in {"no", "yes"} for p in served)
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-6 for p in served)

    card = client.get(f"/v1/models/{model_id}").json()
    path = tmp_path / "m.keras"
    path.write_bytes(client.get(f"/v1/models/{model_id}/download").content)
    model = keras.saving.load_model(path, safe_mode=True)
    positive = model.predict(_file_inputs(RAW_ROWS, card["input_schema"]), verbose=0).reshape(-1)
    assert card["input_schema"]["classes"] == ["no", "yes"]
    np.testing.assert_allclose([p["probabilities"]["yes"] for p in served], positive, rtol=1e-5, atol=1e-6)
    assert [p["label"] for p in served] == ["yes" if q > 0.5 else "no" for q in positive]

    unknown = client.post(f"/v1/models/{model_id}/predict", json={"rows": [{"colour": "red"}]})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_column"
    assert "colour" in unknown.json()["detail"]
    empty = client.post(f"/v1/models/{model_id}/predict", json={"rows": []})
    assert empty.status_code == 422


def test_diagnostics_and_gradient_norms_are_served(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """Per-epoch gradient norms per layer in /metrics; flags with evidence and remedy in /trials."""
    dataset = upload(client, csvs["breast_cancer"])
    spec = {"preprocessing": {"normalization": "none"}, "training": {"epochs": 5, "early_stopping": None}}
    job = wait_job(client, submit(client, dataset["id"], "target", spec)["id"])
    assert job["status"] == "succeeded", job
    series = client.get(f"/v1/jobs/{job['id']}/metrics", params={"trial": 0}).json()
    assert len(series) == 5
    assert all(set(row["grad_norms"]) == {"dense_0", "dense_1", "output"} for row in series)
    trial = client.get(f"/v1/jobs/{job['id']}/trials").json()[0]
    flags = {f["flag"]: f for f in trial["diagnostics"]["flags"]}
    assert "unscaled_input" in flags
    assert "standard" in flags["unscaled_input"]["remedy"]


def test_diverging_training_ends_failed_with_its_diagnostics(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """A NaN loss fails the job (never stuck) with a readable error and the exploding flag."""
    dataset = upload(client, csvs["diabetes"])
    spec = {
        "preprocessing": {"normalization": "none"},
        "training": {"optimizer": "sgd", "learning_rate": 5.0, "epochs": 20, "early_stopping": None},
    }
    job = wait_job(client, submit(client, dataset["id"], "target", spec)["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "training_diverged" and "NaN" in job["error"]["message"]
    assert "exploding_gradients" in [f["flag"] for f in job["error"]["details"]["diagnostics"]["flags"]]
    trial = client.get(f"/v1/jobs/{job['id']}/trials").json()[0]
    assert trial["status"] == "failed" and trial["diagnostics"]["flags"]


def test_predict_refuses_a_tampered_file_and_non_finite_inputs(
    client: TestClient,
    settings: Settings,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    csvs: dict[str, Path],
) -> None:
    """The file is loaded only if its sha256 matches; NaN in a row is a 422, never a silent null."""
    dataset = upload(client, csvs["breast_cancer"])
    job = wait_job(client, submit(client, dataset["id"], "target", {"training": {"epochs": 5}})["id"])
    assert job["status"] == "succeeded", job
    model_id = job["best"]["model_id"]
    columns = [c["name"] for c in dataset["columns"] if c["name"] != "target"]
    path = settings.data_dir / "models" / f"{model_id}.keras"
    original = path.read_bytes()
    path.write_bytes(original + b"tampered")
    tampered = client.post(f"/v1/models/{model_id}/predict", json={"rows": [dict.fromkeys(columns, 1.0)]})
    assert tampered.status_code == 503 and tampered.json()["code"] == "model_file_mismatch", tampered.text
    path.write_bytes(original)

    nan_row = '{"rows": [{"' + columns[0] + '": NaN}]}'
    not_finite = client.post(
        f"/v1/models/{model_id}/predict", content=nan_row, headers={"content-type": "application/json"}
    )
    assert not_finite.status_code == 422 and not_finite.json()["code"] == "non_finite_input", not_finite.text

    fine = client.post(f"/v1/models/{model_id}/predict", json={"rows": [dict.fromkeys(columns, 1.0)]})
    assert fine.status_code == 200, "the restored file loads and predicts"
