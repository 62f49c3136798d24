"""Celery tasks of a search: the coordinator step and one task per trial, on any worker."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

import structlog

from models.db import session_scope
from models.search_space import materialize
from models.spec import JobSpec, SearchSpec
from models.status import JobStatus, TrialStatus
from models.store import DatasetStore, JobStore, TrialStore
from worker.app import app
from worker.protocol import RUN_TRIAL, SEARCH_STEP
from worker.recorder import TrialRecorder
from worker.runtime import Runtime, runtime
from worker.search_steps import score_of, search_parts, step_once, trial_files
from worker.training.reporting import TrainingFailed

log = structlog.get_logger(__name__)
MAX_STEP_RETRIES = 20


def advance(rt: Runtime, job_id: str) -> None:
    """Run a coordinator step (retrying lost races), then dispatch the trials it created."""
    for _ in range(MAX_STEP_RETRIES):
        outcome = step_once(rt, job_id)
        if outcome is not None:
            for trial_id in outcome.dispatch:
                run_trial.apply_async(args=[trial_id], queue=rt.settings.queue)
            return
    log.warning("search_step_gave_up", job_id=job_id)


def nudge(rt: Runtime, job_id: str) -> None:
    """Ask any worker to run a coordinator step for ``job_id``."""
    search_step.apply_async(args=[job_id], queue=rt.settings.queue)


@app.task(name=SEARCH_STEP, acks_late=True)
def search_step(job_id: str) -> None:
    """Tell the oracle what finished, start what it proposes, or finish the search."""
    advance(runtime(), job_id)


def _trial_spec(document: dict[str, Any], values: dict[str, Any]) -> tuple[JobSpec, SearchSpec]:
    """The concrete spec of one trial, and the search options it is scored by."""
    _, space, search = search_parts(document)
    concrete = materialize(space, values)
    if "tuner/epochs" in values:  # Hyperband decides each trial's budget
        concrete.setdefault("training", {})["epochs"] = int(values["tuner/epochs"])
    return JobSpec.model_validate(concrete), search


@app.task(name=RUN_TRIAL, acks_late=True)
def run_trial(trial_id: str) -> None:
    """Claim a queued trial (duplicates exit), train its executions, record, and step the search."""
    rt = runtime()
    with session_scope(rt.sessions) as session:
        trials = TrialStore(session)
        trial = trials.get(trial_id)
        job = JobStore(session).get_any(trial.job_id)
        job_id, values, document = job.id, dict(trial.hyperparameters), job.spec
        if job.status != JobStatus.RUNNING:
            # Checked before claiming, so a trial of a cancelled search never starts.
            if trial.status == TrialStatus.QUEUED:
                trials.finish(trial_id, status=TrialStatus.STOPPED, error="search no longer running")
            started = False
        else:
            started = trials.claim(trial_id, worker=rt.worker_name)
        dataset = DatasetStore(session).get_any(job.dataset_id)
        csv_path, has_header, target = (
            rt.settings.data_dir / dataset.storage_key,
            dataset.has_header,
            job.target,
        )
    if not started:
        nudge(rt, job_id)
        return
    # The lease and the cancel watch start at claim time, before TensorFlow's multi-second import.
    recorder = TrialRecorder(rt, job_id, trial_id, execution=0)
    try:
        with recorder.heartbeat():
            _run_executions(rt, recorder, document, values, csv_path, has_header, target)
    except TrainingFailed as exc:
        diagnostics = exc.details.get("diagnostics")
        _fail(rt, trial_id, f"{exc.code}: {exc}", diagnostics)
    except Exception as exc:  # one broken trial never stops the search
        log.exception("trial_crashed", trial_id=trial_id)
        _fail(rt, trial_id, f"{type(exc).__name__}: {exc}", None)
    nudge(rt, job_id)


def _fail(rt: Runtime, trial_id: str, message: str, diagnostics: dict[str, Any] | None) -> None:
    with session_scope(rt.sessions) as session:
        TrialStore(session).finish(
            trial_id, status=TrialStatus.FAILED, error=message, diagnostics=diagnostics
        )


def _run_executions(
    rt: Runtime,
    recorder: TrialRecorder,
    document: dict[str, Any],
    values: dict[str, Any],
    csv_path: Path,
    has_header: bool,
    target: str,
) -> None:
    from worker.training.train import run_training

    trial_id = recorder.trial_id
    assert trial_id is not None
    spec, search = _trial_spec(document, values)
    objective, direction = search.objective or "val_loss", search.direction or "max"
    model_file, card_file = trial_files(rt, trial_id)
    results, scores = [], []
    for execution in range(search.executions_per_trial):
        # Executions differ only by their seed, as keras-tuner's repeated fits differ by initialization.
        run_spec = spec.model_copy(
            update={"training": spec.training.model_copy(update={"seed": spec.training.seed + execution})}
        )
        recorder.execution = execution
        path = model_file.with_name(f"{trial_id}.{execution}.keras")
        result = run_training(
            csv_path=csv_path,
            has_header=has_header,
            target=target,
            spec=run_spec,
            reporter=recorder,
            model_path=path,
        )
        if result.cancelled or recorder.lease_lost:
            path.unlink(missing_ok=True)
            if not recorder.lease_lost:
                with session_scope(rt.sessions) as session:
                    TrialStore(session).finish(trial_id, status=TrialStatus.STOPPED, error="cancelled")
            return
        score = score_of(result.metrics, objective)
        if score is None:
            raise TrainingFailed("objective_missing", f"the run produced no finite {objective}")
        results.append((score, result, path))
        scores.append(score)
    pick = max if direction == "max" else min
    _, best, best_path = pick(results, key=lambda item: item[0])
    for _, _, path in results:
        if path != best_path:
            path.unlink(missing_ok=True)
    os.replace(best_path, model_file)
    card_file.write_text(
        json.dumps(
            {
                "task": best.task,
                "input_schema": best.input_schema,
                "metrics": best.metrics,
                "sha256": best.sha256,
            }
        )
    )
    metrics = {
        "final": best.metrics,
        "best_epoch": {
            "epoch": best.best_epoch,
            **(best.history[best.best_epoch - 1] if best.history else {}),
        },
        "epochs_run": best.epochs_run,
        "executions": [{"score": s, "epochs_run": r.epochs_run} for s, r, _ in results],
    }
    with session_scope(rt.sessions) as session:
        TrialStore(session).finish(
            trial_id,
            status=TrialStatus.COMPLETED,
            score=statistics.fmean(scores),
            metrics=metrics,
            diagnostics=best.diagnostics,
            model_key=str(model_file),
        )
