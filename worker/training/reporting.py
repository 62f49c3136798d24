"""What the training engine needs from the outside world, as a protocol (no SQL, no Celery)."""

from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    """Receives progress from a training run and tells it when to stop."""

    def on_epoch(self, epoch: int, values: dict[str, float], grad_norms: dict[str, float]) -> None:
        """Record one finished epoch (1-based)."""

    def on_epochs(self, epochs: list[tuple[int, dict[str, float], dict[str, float]]]) -> None:
        """Record several finished epochs at once (the fast engine reports a compiled chunk)."""

    def should_stop(self) -> bool:
        """True when the job was cancelled or its lease lost: stop at the next step."""

    def handing_back(self) -> bool:
        """True when the worker is shutting down: checkpoint at the next epoch boundary and stop."""


class TrainingFailed(Exception):
    """Training could not produce a usable model; ``code`` is stable, ``details`` help diagnose."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}
