"""Scores computed one way for the network and the baselines alike (scikit-learn's metrics)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

# The number a job compares models on, and whether higher is better.
PRIMARY = {"binary": ("accuracy", True), "multiclass": ("accuracy", True), "regression": ("rmse", False)}


def score(task: str, y: np.ndarray, outputs: np.ndarray, *, n_classes: int, prefix: str) -> dict[str, float]:
    """Metrics of ``outputs`` (probabilities, or values in the target's units) against ``y``."""
    if task == "regression":
        values = outputs.reshape(-1)
        return {
            f"{prefix}rmse": float(np.sqrt(np.mean((values - y) ** 2))),
            f"{prefix}mae": float(mean_absolute_error(y, values)),
            f"{prefix}r2": float(r2_score(y, values)) if len(y) > 1 else 0.0,
        }
    probabilities = class_probabilities(task, outputs, len(y))
    labels = np.arange(n_classes)
    clipped = np.clip(probabilities, 1e-7, 1.0)
    found = {
        f"{prefix}accuracy": float(accuracy_score(y, probabilities.argmax(axis=1))),
        f"{prefix}loss": float(log_loss(y, clipped / clipped.sum(axis=1, keepdims=True), labels=labels)),
    }
    if task == "binary" and len(np.unique(y)) == 2:
        found[f"{prefix}auc"] = float(roc_auc_score(y, probabilities[:, 1]))
    return found


def class_probabilities(task: str, outputs: np.ndarray, rows: int) -> np.ndarray:
    """A classifier's outputs as one probability column per class (a sigmoid's one column becomes two)."""
    probabilities = outputs.reshape(rows, -1)
    if probabilities.shape[1] == 1 or (task == "binary" and probabilities.shape[1] == 2):
        positive = probabilities[:, -1]
        probabilities = np.stack([1.0 - positive, positive], axis=1)
    return probabilities


def row_losses(task: str, y: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Each row's loss, whose mean orders models as val_loss (val_rmse for regression) does: its log loss
    (clipped and normalized as ``score``'s), or its squared error."""
    if task == "regression":
        return np.asarray((outputs.reshape(-1) - y) ** 2, dtype="float64")
    clipped = np.clip(class_probabilities(task, outputs, len(y)), 1e-7, 1.0)
    truth = clipped[np.arange(len(y)), y.astype(int)] / clipped.sum(axis=1)
    return np.asarray(-np.log(truth), dtype="float64")
