"""One training run: data -> preprocessing -> model -> fit -> metrics -> saved file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.metrics import r2_score

from models.spec import JobSpec
from worker.training.artifacts import save_model
from worker.training.builder import build_model, compile_model, fit_preprocessing
from worker.training.callbacks import EpochReporter
from worker.training.data import load_frame, prepare
from worker.training.diagnostics import analyze, make_probe
from worker.training.inputs import frame_to_inputs, to_tensors
from worker.training.reporting import Reporter, TrainingFailed


@dataclass
class TrainResult:
    """What a finished run produced."""

    task: str
    metrics: dict[str, Any]
    input_schema: dict[str, Any]
    epochs_run: int
    best_epoch: int
    cancelled: bool = False
    sha256: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _evaluate(
    model: keras.Model, x: dict[str, np.ndarray], y: np.ndarray, prefix: str, task: str
) -> dict[str, float]:
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    metrics = {f"{prefix}{k}": float(v) for k, v in scores.items()}
    if task == "regression":
        predicted = model.predict(x, verbose=0).reshape(-1)
        metrics[f"{prefix}r2"] = float(r2_score(y, predicted))
    return metrics


def _best_epoch(history: list[dict[str, float]], spec: JobSpec) -> int:
    stopping = spec.training.early_stopping
    if not history or stopping is None or not stopping.restore_best_weights:
        return len(history)
    monitor = stopping.monitor
    values = [h.get(monitor, float("nan")) for h in history]
    maximize = "accuracy" in monitor or "auc" in monitor
    pick = np.nanargmax if maximize else np.nanargmin
    return int(pick(values)) + 1


def run_training(
    *, csv_path: Path, has_header: bool, target: str, spec: JobSpec, reporter: Reporter, model_path: Path
) -> TrainResult:
    """Train one model as ``spec`` says, reporting each epoch; save it to ``model_path``."""
    keras.backend.clear_session()  # a long-lived worker child must not accumulate old graphs
    _seed(spec.training.seed)
    frame, columns = load_frame(csv_path, has_header=has_header)
    data = prepare(frame, columns, target=target, spec=spec)
    schema = fit_preprocessing(data.x_train, data.features, spec)
    x_train = to_tensors(frame_to_inputs(data.x_train, schema))
    x_val = to_tensors(frame_to_inputs(data.x_val, schema))
    scale = (
        (float(data.y_train.mean()), float(data.y_train.std()) or 1.0)
        if spec.task == "regression"
        else (0.0, 1.0)
    )
    model = build_model(schema, spec, n_classes=len(data.classes), target_scale=scale)
    compile_model(model, spec)
    watcher = EpochReporter(reporter, make_probe(model, x_train, data.y_train))
    callbacks: list[keras.callbacks.Callback] = [watcher]
    stopping = spec.training.early_stopping
    if stopping is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=stopping.monitor,
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                restore_best_weights=stopping.restore_best_weights,
                mode="max" if ("accuracy" in stopping.monitor or "auc" in stopping.monitor) else "min",
            )
        )
    model.fit(
        x_train,
        data.y_train,
        validation_data=(x_val, data.y_val),
        epochs=spec.training.epochs,
        batch_size=spec.training.batch_size,
        callbacks=callbacks,
        verbose=0,
        shuffle=True,
    )
    diagnostics = analyze(
        history=watcher.history, measurements=watcher.measurements, schema=schema, spec=spec
    )
    if watcher.diverged_at is not None:
        raise TrainingFailed(
            "training_diverged",
            f"the loss became NaN/inf at epoch {watcher.diverged_at}; lower the learning rate, "
            "enable normalization or set training.clipnorm",
            {"epoch": watcher.diverged_at, "last_epoch": watcher.history[-1], "diagnostics": diagnostics},
        )
    input_schema = {"task": spec.task, "target": target, "classes": data.classes, "inputs": schema}
    epochs_run = len(watcher.history)
    if watcher.cancelled:
        return TrainResult(
            spec.task,
            {},
            input_schema,
            epochs_run,
            epochs_run,
            cancelled=True,
            history=watcher.history,
            diagnostics=diagnostics,
        )
    metrics = _evaluate(model, x_val, data.y_val, "val_", spec.task)
    metrics |= _evaluate(model, x_train, data.y_train, "", spec.task)
    metrics |= {"train_rows": len(data.y_train), "val_rows": len(data.y_val)}
    sha = save_model(model, model_path)
    return TrainResult(
        spec.task,
        metrics,
        input_schema,
        epochs_run,
        _best_epoch(watcher.history, spec),
        sha256=sha,
        history=watcher.history,
        diagnostics=diagnostics,
    )
