"""Turning a model's raw outputs into labelled predictions."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from worker.training.inputs import rows_to_inputs, to_tensors

NON_FINITE = "non_finite_output"


def predict_rows(model: keras.Model, input_schema: dict[str, Any], rows: list[dict[str, Any]]) -> list[Any]:
    """Class label + probabilities for classification, the value for regression."""
    inputs = to_tensors(rows_to_inputs(rows, input_schema["inputs"]))
    outputs = np.asarray(model.predict(inputs, verbose=0, batch_size=1024), dtype="float64")
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
