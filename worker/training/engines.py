"""Which engine trains a run (the compiled JAX loop or model.fit), and the fast engine's runs end to end."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.spec import JobSpec
from worker.training.checkpoints import Checkpoint
from worker.training.reporting import Reporter


@dataclass(frozen=True)
class EngineChoice:
    """The engine that runs a spec and why, as the job's events tell it."""

    engine: str  # fast | reference
    reason: str


def choose_engine(spec: JobSpec) -> EngineChoice:
    """``auto`` and ``fast`` take the fast engine whenever it can run the spec; ``reference`` is model.fit."""
    asked = spec.training.engine
    if asked == "reference":
        return EngineChoice("reference", "spec.training.engine is 'reference' (model.fit)")
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("optax") is None:
        return EngineChoice("reference", "the fast engine needs jax and optax, which this worker lacks")
    if spec.training.clipnorm is not None and spec.training.clipvalue is not None:
        # Keras refuses both at once; the reference path reports that error as Keras words it.
        return EngineChoice("reference", "clipnorm and clipvalue together are not a Keras optimizer")
    return EngineChoice("fast", f"spec.training.engine is '{asked}': the compiled JAX training loop")


@dataclass
class Run:
    """One training run of a population: its spec, where its epochs go, where its model is saved."""

    spec: JobSpec
    reporter: Reporter
    model_path: Path | None  # None: train and score only (a search keeps only its best models)
    checkpoint: Checkpoint | None = None  # where the run saves its state and resumes from
    refit: bool = False  # trains on the validation rows too (a search's final model)


def features_matrix(preprocessor, inputs, *, batch_rows: int = 65536) -> np.ndarray:
    """The preprocessing model's output for every row, called in large slices (predict's loop is slow)."""
    import keras

    # A direct call takes tensors only (string columns already are): numbers become tensors too.
    tensors = {
        k: keras.ops.convert_to_tensor(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()
    }
    rows = len(next(iter(inputs.values())))
    parts = [
        np.asarray(
            preprocessor({k: v[start : start + batch_rows] for k, v in tensors.items()}, training=False)
        )
        for start in range(0, rows, batch_rows)
    ]
    return np.concatenate(parts).astype(np.float32, copy=False)
