"""Where a trial's files live under the data directory: its model and card, its refit, its checkpoint."""

from __future__ import annotations

from pathlib import Path

from worker.runtime import Runtime


def trial_files(rt: Runtime, trial_id: str) -> tuple[Path, Path]:
    """A trial's model and its card (input schema, metrics) until the job registers or drops them."""
    folder = rt.settings.data_dir / "models" / "trials"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{trial_id}.keras", folder / f"{trial_id}.json"


def fold_model_files(rt: Runtime, trial_id: str, folds: int) -> list[Path]:
    """A cross-validated trial's model of each fold, fold 0's being the trial's own model file."""
    model = trial_files(rt, trial_id)[0]
    return [model, *(model.with_name(f"{trial_id}.fold{fold}.keras") for fold in range(1, folds))]


def selection_models(rt: Runtime, trial_ids: list[str], folds: int) -> list[list[Path]]:
    """What ensemble selection judges each trial by: its model of every fold where all trials have them
    (out-of-fold outputs), else its own model alone (the validation rows)."""
    per_fold = [fold_model_files(rt, trial_id, folds) for trial_id in trial_ids]
    if folds > 1 and all(path.is_file() for paths in per_fold for path in paths):
        return per_fold
    return [paths[:1] for paths in per_fold]


def checkpoint_file(rt: Runtime, trial_id: str) -> Path:
    """A trial's training checkpoint (the state a re-claimed run resumes from)."""
    folder = rt.settings.data_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{trial_id}.ckpt"


def refit_files(rt: Runtime, trial_id: str) -> tuple[Path, Path]:
    """A search's refit of its best trial: the model, and its card (alone, it says why the refit failed)."""
    return trial_files(rt, f"{trial_id}.refit")


def refit_lock_file(rt: Runtime, trial_id: str) -> Path:
    """Held by the one worker refitting the trial (see ``worker.refit.refit_lock``)."""
    return refit_files(rt, trial_id)[1].with_suffix(".lock")


def ensemble_file(rt: Runtime, trial_id: str) -> Path:
    """A search's ensemble, named after its best trial, until the job registers it."""
    return trial_files(rt, trial_id)[0].with_name(f"{trial_id}.ensemble.keras")
