"""Spec -> keras.Model, with the fitted preprocessing (imputation, scaling, one-hot) inside it."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import layers, ops

from models.spec import JobSpec
from worker.training.inputs import input_names

SATURATING = {"tanh", "sigmoid", "linear"}


def initializer_for(spec_initializer: str, activation: str) -> str:
    """The guide's rule: He for ReLU-like units, Xavier (Glorot) for tanh and sigmoid."""
    if spec_initializer != "auto":
        return spec_initializer
    return "glorot_uniform" if activation in SATURATING else "he_normal"


def _fill_values(column: pd.Series, impute: str) -> float:
    # impute "none" leaves no statistic: a missing value reaches the network as 0.
    if impute == "none":
        return 0.0
    value = column.median() if impute == "median" else column.mean()
    return 0.0 if pd.isna(value) else float(value)


def fit_preprocessing(
    x_train: pd.DataFrame, features: list[dict[str, Any]], spec: JobSpec
) -> list[dict[str, Any]]:
    """Fit imputation, scaling and vocabularies on the training split only; return the schema."""
    names = input_names([f["name"] for f in features])
    markers = spec.preprocessing.missing_values
    schema: list[dict[str, Any]] = []
    for feature in features:
        column = feature["name"]
        field: dict[str, Any] = {"column": column, "input": names[column]}
        if feature["dtype"] == "numeric":
            values = pd.to_numeric(x_train[column], errors="coerce").astype("float64")
            marks = [float(m) for m in markers.get(column, []) if not isinstance(m, str)]
            values = values.where(~values.isin(marks))
            fill = _fill_values(values, spec.preprocessing.impute)
            filled = values.fillna(fill)
            field |= {
                "dtype": "numeric",
                "missing_markers": marks,
                "fill": fill,
                "mean": float(filled.mean()),
                "std": float(filled.std(ddof=0)),
                "min": float(filled.min()),
                "max": float(filled.max()),
            }
        else:
            present = x_train[column].dropna().astype(str).str.strip()
            vocab = sorted(v for v in present.unique().tolist() if v)
            field |= {"dtype": "categorical", "vocabulary": vocab}
        schema.append(field)
    return schema


def _numeric_block(inputs: dict[str, Any], fields: list[dict[str, Any]], normalization: str) -> Any:
    x = (
        layers.Concatenate(name="numeric")([inputs[f["input"]] for f in fields])
        if len(fields) > 1
        else inputs[fields[0]["input"]]
    )
    for position, field in enumerate(fields):
        for marker in field["missing_markers"]:
            # Values meaning "not measured" become NaN so imputation treats them as missing.
            hit = ops.logical_and(ops.equal(x, marker), ops.equal(ops.arange(len(fields)), position))
            x = ops.where(hit, float("nan"), x)
    fill = np.array([f["fill"] for f in fields], dtype="float32")
    x = ops.where(ops.isnan(x), fill, x)
    if normalization == "standard":
        mean = [f["mean"] for f in fields]
        var = [max(f["std"], 1e-12) ** 2 for f in fields]
        x = layers.Normalization(mean=mean, variance=var, name="standardize")(x)
    elif normalization == "minmax":
        low = [f["min"] for f in fields]
        span = [max(f["max"] - f["min"], 1e-12) ** 2 for f in fields]
        x = layers.Normalization(mean=low, variance=span, name="minmax")(x)
    return x


def _inputs(schema: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        f["input"]: keras.Input(
            shape=(1,), name=f["input"], dtype="float32" if f["dtype"] == "numeric" else "string"
        )
        for f in schema
    }


def _features(inputs: dict[str, Any], schema: list[dict[str, Any]], spec: JobSpec) -> Any:
    """Raw inputs -> the matrix the first Dense layer sees (imputed, scaled, one-hot encoded)."""
    parts = []
    numeric = [f for f in schema if f["dtype"] == "numeric"]
    if numeric:
        parts.append(_numeric_block(inputs, numeric, spec.preprocessing.normalization))
    for field in (f for f in schema if f["dtype"] == "categorical"):
        lookup = layers.StringLookup(
            vocabulary=field["vocabulary"] or ["?"], output_mode="one_hot", name=f"onehot_{field['input']}"
        )
        parts.append(lookup(inputs[field["input"]]))
    return layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]


def build_preprocessor(schema: list[dict[str, Any]], spec: JobSpec) -> keras.Model:
    """The saved model's preprocessing alone: the fast engine trains on its output."""
    inputs = _inputs(schema)
    return keras.Model(inputs, _features(inputs, schema, spec), name="preprocessing")


def build_model(
    schema: list[dict[str, Any]],
    spec: JobSpec,
    *,
    n_classes: int,
    target_scale: tuple[float, float] = (0.0, 1.0),
) -> keras.Model:
    """Inputs (one per column) -> preprocessing -> hidden layers -> task's output layer."""
    inputs = _inputs(schema)
    x = _features(inputs, schema, spec)
    model_spec = spec.model
    regularizer = (
        keras.regularizers.L1L2(l1=model_spec.l1, l2=model_spec.l2)
        if model_spec.l1 or model_spec.l2
        else None
    )
    for i, layer in enumerate(model_spec.layers):
        x = layers.Dense(
            layer.units,
            kernel_initializer=initializer_for(model_spec.initializer, layer.activation),
            kernel_regularizer=regularizer,
            name=f"dense_{i}",
        )(x)
        if model_spec.batch_norm:
            x = layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = layers.Activation(layer.activation, name=f"{layer.activation}_{i}")(x)
        if layer.dropout:
            x = layers.Dropout(layer.dropout, name=f"dropout_{i}")(x)
    # Without hidden layers the output kernel is the model's only one: L1/L2 there (a regularized
    # linear model) rather than nowhere.
    output = {"name": "output", "kernel_regularizer": None if model_spec.layers else regularizer}
    if spec.task == "binary":
        out = layers.Dense(1, activation="sigmoid", **output)(x)
    elif spec.task == "multiclass":
        out = layers.Dense(n_classes, activation="softmax", **output)(x)
    else:
        # The linear unit learns a standardized target; the saved model answers in the target's units.
        mean, std = target_scale
        out = layers.Rescaling(scale=std, offset=mean, name="target_scale")(layers.Dense(1, **output)(x))
    return keras.Model(inputs, out, name="tuneforge")


def compile_model(model: keras.Model, spec: JobSpec) -> None:
    """Attach optimizer (with clipping), the task's loss and the task's metrics."""
    training = spec.training
    options: dict[str, Any] = {"learning_rate": training.applied_learning_rate}
    if training.clipnorm is not None:
        options["clipnorm"] = training.clipnorm
    if training.clipvalue is not None:
        options["clipvalue"] = training.clipvalue
    optimizer = keras.optimizers.get({"class_name": training.optimizer, "config": options})
    if spec.task == "binary":
        loss = "binary_crossentropy"
        metrics: list[Any] = [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    elif spec.task == "multiclass":
        loss = "sparse_categorical_crossentropy"
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    else:
        loss = "mean_squared_error"
        metrics = [
            keras.metrics.RootMeanSquaredError(name="rmse"),
            keras.metrics.MeanAbsoluteError(name="mae"),
        ]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
