"""The top-k trials of a search as one saved model that averages their outputs."""

from __future__ import annotations

from pathlib import Path

import keras

from worker.training.artifacts import save_model


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
