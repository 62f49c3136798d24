"""What the training engine needs from the outside world, as a protocol (no SQL, no Celery)."""

from __future__ import annotations

from typing import Any, Protocol

Epochs = list[tuple[int, dict[str, float], dict[str, float]]]  # (1-based epoch, metrics, grad norms)


class Reporter(Protocol):
    """Receives progress from a training run and tells it when to stop."""

    def on_epoch(self, epoch: int, values: dict[str, float], grad_norms: dict[str, float]) -> None:
        """Record one finished epoch (1-based)."""

    def on_epochs(self, epochs: Epochs) -> None:
        """Record several finished epochs at once (the fast engine reports a compiled chunk)."""

    def should_stop(self) -> bool:
        """True when the job was cancelled or its lease lost: stop at the next step."""

    def handing_back(self) -> bool:
        """True when the worker is shutting down: checkpoint at the next epoch boundary and stop."""


def report_together(batches: list[tuple[Reporter, Epochs]]) -> None:
    """Hand each run its epochs of one chunk; reporters that store many runs at once (one
    ``on_epochs_together`` shared by all) get them in one call, the rest one run at a time."""
    together = {getattr(type(reporter), "on_epochs_together", None) for reporter, _ in batches}
    store = together.pop() if len(together) == 1 else None
    if store is not None:
        store(batches)
        return
    for reporter, epochs in batches:
        reporter.on_epochs(epochs)


class TrainingFailed(Exception):
    """Training could not produce a usable model; ``code`` is stable, ``details`` help diagnose."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}
