"""Other formats of a saved model, each checked against the ``.keras`` file on validation rows."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from models.atomic import write_whole
from worker.training.reporting import TrainingFailed

PARITY_TOLERANCE = 1e-5
ONNX_OPSET = 17  # what onnxruntime 1.16+ (2023) runs


def _parity(expected: np.ndarray, got: Any, fmt: str) -> dict[str, Any]:
    """How far the exported model's outputs are from the model's; past the tolerance the export fails."""
    got = np.asarray(got, dtype="float64").reshape(expected.shape)
    gap = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    if not gap <= PARITY_TOLERANCE:
        raise TrainingFailed(
            "export_mismatch",
            f"the {fmt} export differs from the model by up to {gap:.2e} on validation rows",
        )
    return {"rows": int(expected.shape[0]), "max_abs_diff": gap, "tolerance": PARITY_TOLERANCE}


def _card(archive: Path, parity: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return {"bytes": archive.stat().st_size, "sha256": digest, "parity": parity}


def export_saved_model(model: Any, archive: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    """Keras' ``model.export`` as a TensorFlow SavedModel (a .tar.gz of its folder), whose ``serve``
    endpoint must answer as the model does on ``inputs`` (validation rows), within 1e-5."""
    import tensorflow as tf

    expected = np.asarray(model.predict(inputs, verbose=0), dtype="float64")
    with tempfile.TemporaryDirectory(dir=archive.parent) as scratch:
        folder = Path(scratch) / "saved_model"
        model.export(str(folder), format="tf_saved_model", verbose=False)
        loaded = tf.saved_model.load(str(folder))  # held: its variables die with it
        parity = _parity(
            expected, loaded.serve({k: tf.constant(v) for k, v in inputs.items()}), "saved_model"
        )
        partial = Path(scratch) / "archive.tar.gz"
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(folder, arcname="saved_model")
        os.replace(partial, archive)
    return _card(archive, parity)


def export_onnx(model: Any, path: Path, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The model as one ONNX file (inputs named as the model's, one float32 column each; output
    ``output``), run by onnxruntime on ``inputs`` (validation rows) within 1e-5 of the model.

    Keras' own ONNX export leaves the normalization constants as extra graph inputs, so the model's
    TensorFlow graph is frozen first (every captured weight and constant inlined) and converted whole.
    """
    import onnxruntime
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    names = [tensor.name for tensor in model.inputs]
    signature = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    graph = convert_variables_to_constants_v2(
        tf.function(
            lambda *columns: model(dict(zip(names, columns, strict=True)), training=False)
        ).get_concrete_function(*signature)
    )
    proto, _ = tf2onnx.convert.from_graph_def(
        graph.graph.as_graph_def(),
        input_names=[t.name for t in graph.inputs],
        output_names=[t.name for t in graph.outputs],
        opset=ONNX_OPSET,
    )
    _rename(
        proto,
        dict(zip([t.name for t in graph.inputs], names, strict=True)) | {graph.outputs[0].name: "output"},
    )
    expected = np.asarray(model.predict(inputs, verbose=0), dtype="float64")
    serialized = proto.SerializeToString()
    session = onnxruntime.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    parity = _parity(expected, session.run(["output"], {n: inputs[n] for n in names})[0], "onnx")
    write_whole(path, serialized)
    return _card(path, parity)


def _rename(proto: Any, names: dict[str, str]) -> None:
    """Give the graph's inputs and output readable names (the converter keeps TensorFlow's ``a:0``)."""
    graph = proto.graph
    for value in [*graph.input, *graph.output]:
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
