"""A search's final refit: the best trial's configuration retrained on training + validation rows."""

from __future__ import annotations

import json
import os
from typing import Any

import structlog

from models.db import session_scope
from models.store import DatasetStore, JobStore, TrialStore
from worker.coordinator import trial_spec
from worker.files import refit_files
from worker.runtime import Runtime

log = structlog.get_logger(__name__)


class _Unreported:
    """A refit's epochs are not a trial's: nothing is recorded, and only the search's end stops it."""

    def on_epoch(self, epoch: int, values: dict[str, float], grad_norms: dict[str, float]) -> None:
        """Ignore one epoch."""

    def on_epochs(self, epochs: list[tuple[int, dict[str, float], dict[str, float]]]) -> None:
        """Ignore a chunk of epochs."""

    def should_stop(self) -> bool:
        """Never: the refit is short (the best trial's epoch count, no early stopping)."""
        return False

    def handing_back(self) -> bool:
        """Never: a refit interrupted by a shutdown is simply run again by the next step."""
        return False


def refit_best(rt: Runtime, job_id: str, trial_id: str) -> None:
    """Train the trial's configuration for its best epoch count on train + validation rows; write the
    model and its card (or a card saying why not), which the next coordinator step finishes with."""
    from worker.training.train import run_training

    with session_scope(rt.sessions) as session:
        job = JobStore(session).get_any(job_id)
        trial = TrialStore(session).get(trial_id)
        dataset = DatasetStore(session).get_any(job.dataset_id)
        document, values, metrics = dict(job.spec), dict(trial.hyperparameters), dict(trial.metrics or {})
        csv_path, has_header, target = (
            rt.settings.data_dir / dataset.storage_key,
            dataset.has_header,
            job.target,
        )
    spec, _ = trial_spec(document, values)
    epochs = int((metrics.get("best_epoch") or {}).get("epoch") or spec.training.epochs)
    # The epoch count early stopping chose on validation, now with those rows trained on.
    training = spec.training.model_copy(update={"epochs": max(1, epochs), "early_stopping": None})
    spec = spec.model_copy(update={"training": training})
    model_path, card_path = refit_files(rt, trial_id)
    card: dict[str, Any]
    try:
        result = run_training(
            csv_path=csv_path,
            has_header=has_header,
            target=target,
            spec=spec,
            reporter=_Unreported(),
            model_path=model_path,
            refit=True,
        )
        card = {
            "task": result.task,
            "input_schema": result.input_schema,
            "sha256": result.sha256,
            "refit": {"epochs": epochs, "train_rows": result.metrics.get("train_rows")},
        }
    except Exception as exc:  # the search keeps its best trial's model
        log.warning("refit_failed", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        model_path.unlink(missing_ok=True)
        card = {"failed": f"{type(exc).__name__}: {exc}"}
    partial = card_path.with_suffix(".partial")
    partial.write_text(json.dumps(card))
    os.replace(partial, card_path)
