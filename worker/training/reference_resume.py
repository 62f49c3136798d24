"""Checkpoints for the reference engine (model.fit): save weights, optimizer slots and early stopping,
and put them back so ``fit(initial_epoch=N)`` continues where a lost run stopped."""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from worker.training.callbacks import EpochReporter
from worker.training.checkpoints import Checkpoint
from worker.training.diagnostics import Measurement

STOPPING_FIELDS = ("wait", "best", "best_epoch")


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping whose counters can be restored (``on_train_begin`` would reset them)."""

    resume: tuple[dict[str, Any], list[np.ndarray] | None] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.resume is not None:
            counters, best_weights = self.resume
            for name in STOPPING_FIELDS:
                setattr(self, name, counters[name])
            self.best_weights = best_weights


class SaveCheckpoint(keras.callbacks.Callback):
    """At the end of an epoch, when due: weights, optimizer variables, early stopping, history."""

    def __init__(
        self, checkpoint: Checkpoint, watcher: EpochReporter, stopping: ResumableEarlyStopping | None
    ) -> None:
        super().__init__()
        self.checkpoint, self.watcher, self.stopping = checkpoint, watcher, stopping

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        leaving = self.watcher.reporter.handing_back()  # the worker is shutting down
        if leaving:
            self.watcher.cancelled = True
        elif self.model.stop_training or not self.checkpoint.due():
            return  # stopping now: the result is written in moments, nothing to resume
        arrays = {f"weight_{i}": np.asarray(w) for i, w in enumerate(self.model.get_weights())}
        arrays |= {
            f"optimizer_{i}": keras.ops.convert_to_numpy(v)
            for i, v in enumerate(self.model.optimizer.variables)
        }
        meta: dict[str, Any] = {
            "engine": "reference",
            "epoch": epoch + 1,
            "history": self.watcher.history,
            "measurements": [dataclasses.asdict(m) for m in self.watcher.measurements],
        }
        if self.stopping is not None:
            best = self.stopping.best  # None until the monitor has a first value
            meta["stopping"] = {
                "wait": int(self.stopping.wait),
                "best": None if best is None else float(best),
                "best_epoch": int(self.stopping.best_epoch),
            }
            for i, w in enumerate(self.stopping.best_weights or []):
                arrays[f"best_{i}"] = np.asarray(w)
        self.checkpoint.save(arrays, meta)
        if leaving:
            self.model.stop_training = True


def restore(
    model: keras.Model,
    checkpoint: Checkpoint,
    watcher: EpochReporter,
    stopping: ResumableEarlyStopping | None,
) -> int:
    """Load the checkpoint into a compiled model and its callbacks; the epoch to continue from (0: none)."""
    loaded = checkpoint.load()
    if loaded is None or loaded[1].get("engine") != "reference":
        return 0
    arrays, meta = loaded
    weights = [arrays[f"weight_{i}"] for i in range(len(model.get_weights()))]
    model.set_weights(weights)
    model.optimizer.build(model.trainable_variables)
    for i, variable in enumerate(model.optimizer.variables):
        variable.assign(arrays[f"optimizer_{i}"])
    watcher.history = list(meta["history"])
    watcher.measurements = [Measurement(**m) for m in meta["measurements"]]
    if stopping is not None and "stopping" in meta:
        best = [arrays[f"best_{i}"] for i in range(len(weights))] if "best_0" in arrays else None
        counters = dict(
            meta["stopping"],
            wait=int(meta["stopping"]["wait"]),
            best_epoch=int(meta["stopping"]["best_epoch"]),
        )
        stopping.resume = (counters, best)
    return int(meta["epoch"])
