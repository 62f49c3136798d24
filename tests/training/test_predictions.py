"""Predictions whose model output is not finite say so per row instead of answering null."""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.training.predictions import NON_FINITE, predict_rows


class _Overflowing:
    """Stands in for a keras.Model whose second row overflowed (the only part predict_rows calls)."""

    def __init__(self, outputs: list[list[float]]) -> None:
        self.outputs = np.array(outputs)

    def predict(self, *_: Any, **__: Any) -> np.ndarray:
        return self.outputs


def test_a_row_with_a_non_finite_output_is_marked_not_answered() -> None:
    schema = {"task": "binary", "classes": ["no", "yes"], "inputs": []}
    found = predict_rows(_Overflowing([[0.25], [np.nan]]), schema, [{}, {}])  # type: ignore[arg-type]
    assert found[0] == {"label": "no", "probabilities": {"no": 0.75, "yes": 0.25}}
    assert found[1] == {"error": NON_FINITE}


def test_a_regression_value_that_overflowed_is_marked() -> None:
    schema = {"task": "regression", "classes": [], "inputs": []}
    found = predict_rows(_Overflowing([[1.5], [np.inf]]), schema, [{}, {}])  # type: ignore[arg-type]
    assert found == [{"value": 1.5}, {"error": NON_FINITE}]
