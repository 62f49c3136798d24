"""Model export: a TensorFlow SavedModel made and checked by a worker, downloadable, predicting as the
``.keras`` file does."""

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
    assert client.get(f"/v1/models/{model_id}/exports/onnx").status_code == 404
    assert (
        other_client.post(f"/v1/models/{model_id}/export", json={"format": "saved_model"}).status_code == 404
    )
    assert other_client.get(export["download"]).status_code == 404
