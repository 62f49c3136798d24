"""The saved model's input schema and the conversion of raw rows into its named inputs."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from models.tabular import MISSING_TOKENS


def input_names(columns: list[str]) -> dict[str, str]:
    """Map each column to a Keras-safe, unique input name (Keras forbids '/', spaces are risky)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", column) or "col"
        name, suffix = base, 1
        while name in taken:
            suffix += 1
            name = f"{base}_{suffix}"
        taken.add(name)
        names[column] = name
    return names


def _numeric(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values.dtype):  # already parsed (the stored CSV): no per-cell work
        return values.astype("float32").to_numpy().reshape(-1, 1)
    cleaned = values.map(lambda v: None if isinstance(v, str) and v.strip() in MISSING_TOKENS else v)
    return pd.to_numeric(cleaned, errors="coerce").astype("float32").to_numpy().reshape(-1, 1)


def _categorical(values: pd.Series) -> np.ndarray:
    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).strip()

    return np.array([text(v) for v in values], dtype=object).reshape(-1, 1)


def frame_to_inputs(frame: pd.DataFrame, schema: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Turn raw feature values (numbers, strings, blanks) into the model's input dict."""
    inputs: dict[str, np.ndarray] = {}
    for field in schema:
        values = (
            frame[field["column"]]
            if field["column"] in frame
            else pd.Series([None] * len(frame), dtype=object)
        )
        inputs[field["input"]] = _numeric(values) if field["dtype"] == "numeric" else _categorical(values)
    return inputs


def rows_to_inputs(rows: list[dict[str, Any]], schema: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Raw JSON rows (column -> value) to the model's input dict; absent columns are missing."""
    return frame_to_inputs(pd.DataFrame(rows, dtype=object), schema)


def to_tensors(inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """String columns as TensorFlow string tensors: Keras' array adapter rejects object arrays."""
    if not any(array.dtype == object for array in inputs.values()):
        return inputs
    import tensorflow as tf

    return {
        name: tf.constant(array.astype(str)) if array.dtype == object else array
        for name, array in inputs.items()
    }
