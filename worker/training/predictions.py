"""Turning a model's raw outputs into labelled predictions."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from worker.training.inputs import rows_to_inputs, to_tensors

NON_FINITE = "non_finite_output"
# Rows per direct call of the model in ``raw_outputs``: memory stays bounded on large inputs.
CHUNK_ROWS = 8192


def raw_outputs(model: keras.Model, inputs: dict[str, Any]) -> np.ndarray:
    """The model's outputs on ``inputs`` (inference mode, float64), by direct calls in chunks.

    ``model.predict`` builds a dataset pipeline and traces a function for every model it meets: 40-100 ms
    for a few hundred rows, most of a search's closing evaluation; a direct call takes 5 ms.
    """
    rows = len(next(iter(inputs.values()))) if inputs else 0
    if rows == 0:
        # Nothing to call the model on (Keras' predict raises on an empty input): no rows of its outputs.
        return np.zeros((0, *model.outputs[0].shape[1:]), dtype="float64")

    def tensors(start: int) -> dict[str, Any]:
        # All tensors or none: Keras refuses numeric arrays beside string tensors in one call.
        chunk = {k: v[start : start + CHUNK_ROWS] for k, v in inputs.items()}
        return {
            k: keras.ops.convert_to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in chunk.items()
        }

    chunks = [np.asarray(model(tensors(i), training=False)) for i in range(0, rows, CHUNK_ROWS)]
    return np.concatenate(chunks).astype("float64")


def predict_rows(model: keras.Model, input_schema: dict[str, Any], rows: list[dict[str, Any]]) -> list[Any]:
    """Class label + probabilities for classification, the value for regression."""
    inputs = to_tensors(rows_to_inputs(rows, input_schema["inputs"]))
    outputs = raw_outputs(model, inputs)
    task, classes = input_schema["task"], input_schema["classes"]
    finite = np.isfinite(outputs.reshape(len(rows), -1)).all(axis=1)
    found: list[dict[str, Any]]
    if task == "regression":
        found = [{"value": float(v)} for v in outputs.reshape(-1)]
    else:
        if task == "binary":
            positive = outputs.reshape(-1)
            outputs = np.stack([1.0 - positive, positive], axis=1)
        found = [
            {
                "label": classes[int(np.argmax(p))],
                "probabilities": {str(c): float(q) for c, q in zip(classes, p, strict=True)},
            }
            for p in outputs
        ]
    # A row whose output overflowed says so instead of answering NaN (JSON null) as if it were a result.
    return [p if ok else {"error": NON_FINITE} for p, ok in zip(found, finite, strict=True)]
