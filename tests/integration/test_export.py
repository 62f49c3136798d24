"""Model export: a TensorFlow SavedModel and an ONNX file made and checked by a worker, downloadable,
predicting as the ``.keras`` file does."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

import keras
import numpy as np
from fastapi.testclient import TestClient

from tests.support import model_inputs, raw_rows, submit, upload, wait_job
from tuneforge_client import Client


def test_a_saved_model_export_predicts_as_the_keras_file_does(
    client: TestClient,
    other_client: TestClient,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    csvs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A model with a categorical column and blanks: SavedModel within 1e-5 of the .keras file."""
    import tensorflow as tf

    dataset = upload(client, csvs["mixed"])
    job = wait_job(client, submit(client, dataset["id"], "label", {"training": {"epochs": 5}})["id"])
    assert job["status"] == "succeeded", job
    model_id = job["best"]["model_id"]

    made = client.post(f"/v1/models/{model_id}/export", json={"format": "saved_model"})
    assert made.status_code == 200, made.text
    export = made.json()
    assert export["parity"]["rows"] == 60 and export["parity"]["max_abs_diff"] <= 1e-5
    card = client.get(f"/v1/models/{model_id}").json()
    assert card["exports"]["saved_model"]["sha256"] == export["sha256"]

    archive = client.get(export["download"])
    assert archive.status_code == 200 and archive.headers["x-checksum-sha256"] == export["sha256"]
    (tmp_path / "export.tar.gz").write_bytes(archive.content)
    with tarfile.open(tmp_path / "export.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(client.get(f"/v1/models/{model_id}/download").content)
    model = keras.saving.load_model(keras_file, safe_mode=True)
    inputs = model_inputs(raw_rows(csvs["mixed"]).head(50), card["input_schema"])
    expected = model.predict(inputs, verbose=0)
    got = served.serve({name: tf.constant(value) for name, value in inputs.items()}).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)

    # The SDK: export, download and sha256 check in one call.
    sdk = Client(
        api_key=client.headers["Authorization"].split()[1],
        base_url=str(client.base_url),
        transport=client._transport,
    )
    saved = sdk.models.export(model_id, path=tmp_path / "sdk.tar.gz")
    assert (
        hashlib.sha256(saved.read_bytes()).hexdigest()
        == sdk.models.get(model_id).exports["saved_model"]["sha256"]
    )

    onnx = client.post(f"/v1/models/{model_id}/export", json={"format": "onnx"})
    assert onnx.status_code == 422 and onnx.json()["code"] == "format_unavailable"
    assert "color" in onnx.json()["detail"]  # names the categorical column ONNX cannot take
    assert client.get(f"/v1/models/{model_id}/exports/onnx").status_code == 404
    assert (
        other_client.post(f"/v1/models/{model_id}/export", json={"format": "saved_model"}).status_code == 404
    )
    assert other_client.get(export["download"]).status_code == 404


def test_an_onnx_export_predicts_as_the_keras_file_does(
    client: TestClient,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    csvs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A numeric model (iris, three classes): the ONNX file in onnxruntime within 1e-5 of the .keras file."""
    import onnxruntime

    dataset = upload(client, csvs["iris"])
    job = wait_job(client, submit(client, dataset["id"], "target", {"training": {"epochs": 5}})["id"])
    assert job["status"] == "succeeded", job
    model_id = job["best"]["model_id"]

    made = client.post(f"/v1/models/{model_id}/export", json={"format": "onnx"})
    assert made.status_code == 200, made.text
    export = made.json()
    assert export["parity"]["rows"] > 0 and export["parity"]["max_abs_diff"] <= 1e-5
    card = client.get(f"/v1/models/{model_id}").json()
    assert card["exports"]["onnx"]["sha256"] == export["sha256"]
    onnx_file = client.get(export["download"])
    assert onnx_file.status_code == 200 and onnx_file.headers["x-checksum-sha256"] == export["sha256"]
    assert hashlib.sha256(onnx_file.content).hexdigest() == export["sha256"]

    session = onnxruntime.InferenceSession(onnx_file.content, providers=["CPUExecutionProvider"])
    inputs = model_inputs(raw_rows(csvs["iris"]).sample(40, random_state=3), card["input_schema"])
    assert {i.name for i in session.get_inputs()} == set(inputs)  # named as the model card's inputs
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(client.get(f"/v1/models/{model_id}/download").content)
    expected = keras.saving.load_model(keras_file, safe_mode=True).predict(inputs, verbose=0)
    got = session.run(["output"], inputs)[0]
    assert got.shape == (40, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)
