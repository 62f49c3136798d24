"""Predictions whose model output is not finite say so per row instead of answering null."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import train
from worker.training.inputs import frame_to_inputs, to_tensors
from worker.training.predictions import NON_FINITE, predict_rows, raw_outputs


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


def test_raw_outputs_in_chunks_equal_keras_predict(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Direct calls, a chunk at a time (string categories included), answer as ``model.predict`` does."""
    from worker.training import predictions

    result, _ = train(data["mixed"], "label", {"training": {"epochs": 2}}, tmp_path)
    model = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    frame = pd.read_csv(data["mixed"], keep_default_na=False).drop(columns="label")
    inputs = to_tensors(frame_to_inputs(frame, result.input_schema["inputs"]))
    expected = np.asarray(model.predict(inputs, verbose=0), dtype="float64")
    monkeypatch.setattr(predictions, "CHUNK_ROWS", 7)  # 300 rows: 43 chunks, the last of 6 rows
    found = raw_outputs(model, inputs)
    assert found.shape == expected.shape == (300, 1)
    np.testing.assert_allclose(found, expected, atol=1e-6)
