"""A search's best trials as one saved model that averages their outputs, chosen greedily on validation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from worker.training.artifacts import save_model
from worker.training.scores import row_losses


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


def simplest_within_one_se(losses: list[np.ndarray], sizes: list[int]) -> int:
    """The one-standard-error rule (Breiman et al., 1984; Hastie et al., ESL 7.10): among the candidates
    whose validation loss the best's does not clearly beat, the index of the one with the fewest weights.

    On a few dozen validation rows the lowest loss is partly the luck of those rows: a deeper network
    that scores a little better there often scores worse on new rows than the linear model beside it.
    """
    means = [float(loss.mean()) for loss in losses]
    best = int(np.argmin(means))
    within = [i for i, loss in enumerate(losses) if not _clearly_lower(losses[best], loss)]
    return min(within, key=lambda i: (sizes[i], means[i]))


def _clearly_lower(new: np.ndarray, old: np.ndarray) -> bool:
    """True when per-row losses ``new`` beat ``old`` on the same rows by more than one standard error of
    their paired differences."""
    if len(new) < 2:
        return bool(new.mean() < old.mean())
    difference = new - old
    return bool(difference.mean() < -difference.std(ddof=1) / np.sqrt(len(difference)))


def select_members(
    outputs: list[np.ndarray],
    y: np.ndarray,
    *,
    task: str,
    most: int,
    sizes: list[int] | None = None,
) -> list[int]:
    """Greedy ensemble selection (Caruana et al., 2004): indices into ``outputs`` whose mean does best.

    ``outputs`` are the candidates' validation outputs, best trial first. Starting from that trial, add
    the candidate that lowers the mean's validation loss (RMSE for regression) the most; stop when none
    does or ``most`` are in. A weak trial is left out instead of diluting the average. With ``sizes``
    (each candidate's weight count) the one-standard-error rule: start from the simplest candidate the
    best does not clearly beat, and add one only where it lowers the loss by more than one standard error.
    """
    losses = [row_losses(task, y, output) for output in outputs]
    chosen = [0 if sizes is None else simplest_within_one_se(losses, sizes)]
    current = losses[chosen[0]]
    better = _lower if sizes is None else _clearly_lower
    while len(chosen) < most:
        tried = {
            i: row_losses(task, y, np.mean([outputs[j] for j in (*chosen, i)], axis=0))
            for i in range(len(outputs))
            if i not in chosen
        }
        if not tried:
            break
        best = min(tried, key=lambda i: float(tried[i].mean()))
        if not better(tried[best], current):
            break
        current = tried[best]
        chosen.append(best)
    return chosen


def _lower(new: np.ndarray, old: np.ndarray) -> bool:
    return bool(new.mean() < old.mean())


def select_with_replacement(
    outputs: list[np.ndarray],
    y: np.ndarray,
    *,
    task: str,
    rounds: int,
    sizes: list[int] | None = None,
) -> list[int]:
    """Ensemble selection with replacement (Caruana et al., 2004, as AutoGluon's weighted ensemble):
    ``rounds`` indices into ``outputs`` (best trial first), repeats allowed, whose mean does best.

    Starting from the best trial, each round adds the candidate whose addition gives the lowest
    validation loss (RMSE for regression); adding one already in counts it twice. Every round adds one,
    so a refit built from the picks always averages ``rounds`` networks: a trial picked again is
    another seed of it, which lowers the variance validation outputs cannot show. With ``sizes`` (each
    candidate's weight count) the one-standard-error rule: start from the simplest candidate the best
    does not clearly beat; a round whose best addition does not lower the loss by more than one standard
    error picks that simplest candidate again.
    """
    first = 0 if sizes is None else simplest_within_one_se([row_losses(task, y, o) for o in outputs], sizes)
    total = np.array(outputs[first], dtype=np.float64)
    picked = [first]
    while len(picked) < rounds:
        tried = [row_losses(task, y, (total + candidate) / (len(picked) + 1)) for candidate in outputs]
        best = int(np.argmin([loss.mean() for loss in tried]))  # ties to the better-ranked trial
        if sizes is not None and not _clearly_lower(tried[best], row_losses(task, y, total / len(picked))):
            best = first
        picked.append(best)
        total += outputs[best]
    return picked
