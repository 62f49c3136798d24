"""A search's final refit: the best trial's configuration retrained on training + validation rows."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from models.atomic import write_whole
from models.db import session_scope
from models.spec import MAX_SEED, JobSpec
from models.store import DatasetStore, JobStore, TrialStore
from models.tables import Trial
from worker.coordinator import models_kept, ranked, search_parts, trial_spec
from worker.files import refit_files, refit_lock_file, selection_models, trial_files
from worker.runtime import Runtime
from worker.training.engines import Run
from worker.training.reporting import Epochs

if TYPE_CHECKING:
    from worker.training.train import TrainResult

log = structlog.get_logger(__name__)


class _Unreported:
    """A refit's epochs are not a trial's: nothing is recorded, and only the search's end stops it."""

    def on_epoch(self, epoch: int, values: dict[str, float], grad_norms: dict[str, float]) -> None:
        """Ignore one epoch."""

    def on_epochs(self, epochs: Epochs) -> None:
        """Ignore a chunk of epochs."""

    def should_stop(self) -> bool:
        """Never: the refit is short (the best trial's epoch count, no early stopping)."""
        return False

    def handing_back(self) -> bool:
        """Never: a refit interrupted by a shutdown is simply run again by the next step."""
        return False


@contextmanager
def refit_lock(path: Path, stale_after_s: float) -> Iterator[bool]:
    """True when this process may refit: the reaper nudges a search every few seconds, and each nudge
    would otherwise start the same refit again. The lock file is touched while held; one untouched
    for ``stale_after_s`` belongs to a lost worker and is taken over."""
    with suppress(FileNotFoundError):
        if time.time() - path.stat().st_mtime > stale_after_s:
            path.unlink()
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        yield False
        return
    stop = threading.Event()

    def touch() -> None:
        while not stop.wait(min(5.0, stale_after_s / 4)):
            with suppress(FileNotFoundError):
                os.utime(path)

    toucher = threading.Thread(target=touch, name="refit-lock", daemon=True)
    toucher.start()
    try:
        yield True
    finally:
        stop.set()
        toucher.join(timeout=5)
        path.unlink(missing_ok=True)


def refit_best(rt: Runtime, job_id: str, trial_id: str) -> bool:
    """Train the trial's configuration for its best epoch count on train + validation rows; write the
    model and its card (or a card saying why not), which the next coordinator step finishes with.
    False when another worker is already refitting it."""
    with refit_lock(refit_lock_file(rt, trial_id), rt.settings.lease_timeout_s) as mine:
        if mine:
            _refit(rt, job_id, trial_id)
        return mine


def _refit(rt: Runtime, job_id: str, trial_id: str) -> None:
    with session_scope(rt.sessions) as session:
        job = JobStore(session).get_any(job_id)
        trials = TrialStore(session).for_job(job_id)
        dataset = DatasetStore(session).get_any(job.dataset_id)
        document = dict(job.spec)
        best = next(t for t in trials if t.id == trial_id)
        base, _, search = search_parts(document)
        count = base.evaluation.refit_trials
        ranking = [best, *(t for t in ranked(trials, search.direction or "max") if t.id != best.id)]
        # The trials whose models the coordinator keeps (the best alone when one is refit).
        chosen_from = ranking[: max(1, models_kept(base))]
        candidates = [_Candidate(t.number, t.id, _refit_spec(document, t)) for t in chosen_from]
        csv_path, has_header, target = (
            rt.settings.data_dir / dataset.storage_key,
            dataset.has_header,
            job.target,
        )
    picks = Counter(_chosen(rt, candidates, count, base, (csv_path, has_header, target)))
    seeds = base.evaluation.refit_seeds
    # A trial picked w times is refit from w x refit_seeds seeds: its weight in the mean.
    networks = [
        _seeded(c.spec, c.spec.training.seed + i)
        for c, picked in picks.items()
        for i in range(picked * seeds)
    ]
    model_path, card_path = refit_files(rt, trial_id)
    card: dict[str, Any]
    try:
        result = _train_all(csv_path, has_header, target, networks, model_path)
        card = {
            "task": result.task,
            "input_schema": result.input_schema,
            "sha256": result.sha256,
            "refit": {
                "epochs": next(iter(picks)).spec.training.epochs,  # the first pick's
                "train_rows": result.metrics.get("train_rows"),
                "seeds": seeds,
                "trials": [c.number for c in picks],
                "networks": [picked * seeds for picked in picks.values()],
            },
        }
    except Exception as exc:  # the search keeps its best trial's model
        log.warning("refit_failed", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        model_path.unlink(missing_ok=True)
        card = {"failed": f"{type(exc).__name__}: {exc}"}
    write_whole(card_path, json.dumps(card).encode())


@dataclass(frozen=True, eq=False)  # counted by identity: one object per trial
class _Candidate:
    """A trial whose configuration may be refit: its number, id and refit spec."""

    number: int
    trial_id: str
    spec: JobSpec


def _chosen(
    rt: Runtime, candidates: list[_Candidate], count: int, spec: JobSpec, source: tuple[Path, bool, str]
) -> list[_Candidate]:
    """``count`` picks of configurations to refit, the best trial first, repeats allowed: ensemble
    selection with replacement on the validation rows (every row out of fold, when cross-validated)
    among the 2 x ``count`` best trials' own models, as AutoGluon refits the members of its weighted
    ensemble. A weak trial (a linear model among non-linear ones) is left out instead of diluting the
    mean; where no other trial helps, the best is picked again. Where the models cannot be read: the
    ``count`` best, once each."""
    kept = [c for c in candidates if trial_files(rt, c.trial_id)[0].is_file()]
    if count < 2 or not kept or kept[0] is not candidates[0]:
        return candidates[:count]
    from worker.training.evaluation import choose_members

    csv_path, has_header, target = source
    try:
        card = json.loads(trial_files(rt, kept[0].trial_id)[1].read_text())
        picked = choose_members(
            csv_path=csv_path,
            has_header=has_header,
            target=target,
            spec=spec,
            candidates=selection_models(rt, [c.trial_id for c in kept], spec.evaluation.folds),
            input_schema=card["input_schema"],
            most=count,
            replacement=True,
        )
    except Exception as exc:  # selection only shapes the refit: fall back to the best few
        log.warning("refit_selection_failed", error=f"{type(exc).__name__}: {exc}")
        return candidates[:count]
    return [kept[i] for i in picked]


def _refit_spec(document: dict[str, Any], trial: Trial) -> JobSpec:
    """The trial's configuration for the epoch count early stopping chose on validation, now with those
    rows trained on (so no early stopping)."""
    spec, _ = trial_spec(document, dict(trial.hyperparameters))
    metrics = dict(trial.metrics or {})
    epochs = int((metrics.get("best_epoch") or {}).get("epoch") or spec.training.epochs)
    # Cross-validated: the median of the folds' stopping epochs, which one fold's luck moves less.
    per_fold = [e.get("best_epoch") for e in metrics.get("executions", [])[: spec.evaluation.folds]]
    if spec.evaluation.folds > 1 and per_fold and all(isinstance(e, int) for e in per_fold):
        epochs = round(statistics.median(per_fold))
    training = spec.training.model_copy(update={"epochs": max(1, epochs), "early_stopping": None})
    return spec.model_copy(update={"training": training})


def _train_all(
    csv_path: Path, has_header: bool, target: str, networks: list[JobSpec], model_path: Path
) -> TrainResult:
    """Each spec trained once on the same rows, as one population on the fast engine, and saved as the
    mean of their outputs. One refit's held-out score swings with its initial weights by a point or more
    on small data, and the best trial's score is itself partly luck of the validation split: the mean of
    several networks of the best few configurations swings much less, and no validation rows are left
    to choose among them."""
    from worker.training.ensemble import build_ensemble
    from worker.training.train import train_runs

    alone = len(networks) == 1  # one network: saved where it goes, as before
    runs = [Run(spec, _Unreported(), model_path if alone else None, refit=True) for spec in networks]
    results = train_runs(csv_path=csv_path, has_header=has_header, target=target, runs=runs)
    for result in results:
        if result.failure is not None:
            raise result.failure
    first = results[0]
    if alone:
        return first
    with tempfile.TemporaryDirectory(prefix="tuneforge-refit-") as folder:
        members = []
        for i, result in enumerate(results):
            assert result.save is not None  # trained without a model path
            members.append(Path(folder) / f"member{i}.keras")
            result.save(members[-1])
        first.sha256 = build_ensemble(members, model_path)
    return first


def _seeded(spec: JobSpec, seed: int) -> JobSpec:
    return spec.model_copy(
        update={"training": spec.training.model_copy(update={"seed": seed % (MAX_SEED + 1)})}
    )
