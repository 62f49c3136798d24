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
    """Stands in for a keras.Model whose second row overflowed (called directly, as raw_outputs does)."""

    def __init__(self, outputs: list[list[float]]) -> None:
        self.answers = np.array(outputs)

    def __call__(self, *_: Any, **__: Any) -> np.ndarray:
        return self.answers


ONE_INPUT = [{"column": "x", "input": "x", "dtype": "numeric"}]
TWO_ROWS = [{"x": 1.0}, {"x": 2.0}]


class _Counting:
    """A model that counts its direct calls."""

    def __init__(self, model: keras.Model) -> None:
        self.model, self.outputs, self.calls = model, model.outputs, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.model(*args, **kwargs)


def test_a_row_with_a_non_finite_output_is_marked_not_answered() -> None:
    schema = {"task": "binary", "classes": ["no", "yes"], "inputs": ONE_INPUT}
    found = predict_rows(_Overflowing([[0.25], [np.nan]]), schema, TWO_ROWS)  # type: ignore[arg-type]
    assert found[0] == {"label": "no", "probabilities": {"no": 0.75, "yes": 0.25}}
    assert found[1] == {"error": NON_FINITE}


def test_a_regression_value_that_overflowed_is_marked() -> None:
    schema = {"task": "regression", "classes": [], "inputs": ONE_INPUT}
    found = predict_rows(_Overflowing([[1.5], [np.inf]]), schema, TWO_ROWS)  # type: ignore[arg-type]
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
    counting = _Counting(model)
    found = raw_outputs(counting, inputs)  # type: ignore[arg-type]
    assert counting.calls == 43
    assert found.shape == expected.shape == (300, 1)
    np.testing.assert_allclose(found, expected, atol=1e-6)
    # No rows: no call, and no rows of the model's outputs (Keras' own predict raises here).
    empty = raw_outputs(counting, {name: value[:0] for name, value in inputs.items()})  # type: ignore[arg-type]
    assert counting.calls == 43
    assert empty.shape == (0, 1)
