"""Other formats of a saved model, each checked against the ``.keras`` file on validation rows."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from worker.training.reporting import TrainingFailed

FORMATS = ("saved_model", "onnx")
PARITY_TOLERANCE = 1e-5


def export_saved_model(model: Any, archive: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    """Keras' ``model.export`` as a TensorFlow SavedModel (a .tar.gz of its folder), whose ``serve``
    endpoint must answer as the model does on ``inputs`` (validation rows), within 1e-5."""
    import tensorflow as tf

    expected = np.asarray(model.predict(inputs, verbose=0), dtype="float64")
    with tempfile.TemporaryDirectory(dir=archive.parent) as scratch:
        folder = Path(scratch) / "saved_model"
        model.export(str(folder), format="tf_saved_model", verbose=False)
        loaded = tf.saved_model.load(str(folder))  # held: its variables die with it
        served = loaded.serve({k: tf.constant(v) for k, v in inputs.items()})
        got = np.asarray(served, dtype="float64").reshape(expected.shape)
        gap = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        if not gap <= PARITY_TOLERANCE:
            raise TrainingFailed(
                "export_mismatch",
                f"the SavedModel differs from the model by up to {gap:.2e} on validation rows",
            )
        partial = Path(scratch) / "archive.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(folder, arcname="saved_model")
        os.replace(partial, archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return {
        "bytes": archive.stat().st_size,
        "sha256": digest,
        "parity": {"rows": int(expected.shape[0]), "max_abs_diff": gap, "tolerance": PARITY_TOLERANCE},
    }
