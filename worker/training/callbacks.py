"""Keras callbacks: report every epoch, stop on cancellation, stop on a NaN loss."""

from __future__ import annotations

import math
from typing import Any

import keras

from worker.training.diagnostics import GradientProbe, Measurement
from worker.training.reporting import Reporter


class EpochReporter(keras.callbacks.Callback):
    """Send each epoch's metrics and gradient norms to the reporter; stop when told or on NaN."""

    def __init__(self, reporter: Reporter, probe: GradientProbe | None = None) -> None:
        super().__init__()
        self.reporter = reporter
        self.probe = probe
        self.cancelled = False
        self.diverged_at: int | None = None
        self.history: list[dict[str, float]] = []
        self.measurements: list[Measurement] = []

    def _learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # Checked per batch (a cheap flag read) so a cancel lands within seconds.
        if self.reporter.should_stop():
            self.cancelled = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        values["lr"] = self._learning_rate()
        self.history.append(values)
        grad_norms: dict[str, float] = {}
        if self.probe is not None:
            measured = self.probe.measure()
            self.measurements.append(measured)
            grad_norms = measured.grad_norms
            if measured.dead_relu:
                values["dead_relu_max"] = max(measured.dead_relu.values())
        self.reporter.on_epoch(epoch + 1, values, grad_norms)
        if any(math.isnan(v) or math.isinf(v) for k, v in values.items() if k.endswith("loss")):
            self.diverged_at = epoch + 1
            self.model.stop_training = True
