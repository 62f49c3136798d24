"""A search's best trials as one saved model that averages their outputs, chosen greedily on validation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from worker.training.artifacts import save_model
from worker.training.scores import score


def build_ensemble(member_paths: list[Path], path: Path) -> str:
    """Save one model whose output is the mean of the members' outputs; return its sha256.

    Every member takes the same raw-row inputs (preprocessing lives inside each), so the ensemble
    does too: a predict request cannot tell it from a single trial's model.
    """
    # compile=False: the ensemble is for predicting; the members' optimizer state is not carried over.
    members = [keras.saving.load_model(p, safe_mode=True, compile=False) for p in member_paths]
    first = members[0]
    inputs = {
        tensor.name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
        for tensor in first.inputs
    }
    outputs = []
    for number, member in enumerate(members):
        # Loaded models share one default name; a functional model needs its layers' names unique.
        member.name = f"member_{number}"
        outputs.append(member(inputs))
    mean = keras.layers.Average(name="ensemble_mean")(outputs) if len(outputs) > 1 else outputs[0]
    return save_model(keras.Model(inputs, mean, name="ensemble"), path)


def select_members(
    outputs: list[np.ndarray], y: np.ndarray, *, task: str, n_classes: int, most: int
) -> list[int]:
    """Greedy ensemble selection (Caruana et al., 2004): indices into ``outputs`` whose mean does best.

    ``outputs`` are the candidates' validation outputs, best trial first. Starting from that trial, add
    the candidate that lowers the mean's validation loss (RMSE for regression) the most; stop when none
    does or ``most`` are in. A weak trial is left out instead of diluting the average.
    """
    key = "val_rmse" if task == "regression" else "val_loss"

    def loss(indices: list[int]) -> float:
        mean = np.mean([outputs[i] for i in indices], axis=0)
        return score(task, y, mean, n_classes=n_classes, prefix="val_")[key]

    chosen, current = [0], loss([0])
    while len(chosen) < most:
        tried = [(loss([*chosen, i]), i) for i in range(len(outputs)) if i not in chosen]
        if not tried or min(tried)[0] >= current:
            break
        current, best = min(tried)
        chosen.append(best)
    return chosen


def select_with_replacement(
    outputs: list[np.ndarray], y: np.ndarray, *, task: str, n_classes: int, rounds: int
) -> list[int]:
    """Ensemble selection with replacement (Caruana et al., 2004, as AutoGluon's weighted ensemble):
    ``rounds`` indices into ``outputs`` (best trial first), repeats allowed, whose mean does best.

    Starting from the best trial, each round adds the candidate whose addition gives the lowest
    validation loss (RMSE for regression); adding one already in counts it twice. Every round adds one,
    so a refit built from the picks always averages ``rounds`` networks: a trial picked again is
    another seed of it, which lowers the variance validation outputs cannot show.
    """
    key = "val_rmse" if task == "regression" else "val_loss"
    total = np.array(outputs[0], dtype=np.float64)
    picked = [0]
    while len(picked) < rounds:
        losses = [
            score(task, y, (total + candidate) / (len(picked) + 1), n_classes=n_classes, prefix="val_")[key]
            for candidate in outputs
        ]
        best = int(np.argmin(losses))  # ties to the better-ranked trial
        picked.append(best)
        total += outputs[best]
    return picked
