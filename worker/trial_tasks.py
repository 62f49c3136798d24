"""Celery tasks of a search: the coordinator step, and populations of trials trained together."""

from __future__ import annotations

import json
import secrets
import statistics
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from models.atomic import write_whole
from models.db import is_transient, session_scope
from models.spec import JobSpec, SearchSpec
from models.status import JobStatus, TrialStatus
from models.store import ClaimOutcome, DatasetStore, JobStore, TrialStore
from worker.app import app
from worker.checkpointing import open_checkpoint
from worker.coordinator import discard_files, models_kept, score_of, step_once, trial_spec
from worker.db_retry import retry_transient
from worker.files import fold_model_files, trial_files
from worker.handback import hand_back_trials
from worker.metrics import count_trial
from worker.protocol import RUN_POPULATION, RUN_TRIAL, SEARCH_STEP
from worker.recorder import TrialRecorder
from worker.runtime import Runtime, runtime
from worker.training.checkpoints import Checkpoint

log = structlog.get_logger(__name__)
MAX_STEP_RETRIES = 20


def advance(rt: Runtime, job_id: str) -> None:
    """Run a coordinator step (retrying lost races), then dispatch the trials it created."""
    for _ in range(MAX_STEP_RETRIES):
        outcome = step_once(rt, job_id)
        if outcome is not None and outcome.refit is not None:
            from worker.refit import refit_best

            if not refit_best(rt, job_id, outcome.refit):
                return  # another worker is refitting; its next step finishes the search
            continue  # the next step finds the refit and finishes the search
        if outcome is not None:
            discard_files(rt, outcome.discard)
            for population in outcome.dispatch:
                run_population.apply_async(args=[population], queue=rt.settings.queue)
            return
    log.warning("search_step_gave_up", job_id=job_id)


def nudge(rt: Runtime, job_id: str) -> None:
    """Ask any worker to run a coordinator step for ``job_id``."""
    search_step.apply_async(args=[job_id], queue=rt.settings.queue)


@app.task(name=SEARCH_STEP, acks_late=True)
def search_step(job_id: str) -> None:
    """Tell the oracle what finished, start what it proposes, or finish the search."""
    structlog.contextvars.bind_contextvars(job_id=job_id)
    advance(runtime(), job_id)


@app.task(name=RUN_TRIAL, acks_late=True)
def run_trial(trial_id: str) -> None:
    """Run one trial alone (a population of one; the reaper now re-sends lost populations whole)."""
    _run_population([trial_id])


@app.task(name=RUN_POPULATION, acks_late=True)
def run_population(trial_ids: list[str]) -> None:
    """Claim queued trials (duplicates are skipped), train them together, record each, step the search."""
    _run_population(trial_ids)


@dataclass
class Claimed:
    """A claimed trial: its concrete spec and the recorder of each execution."""

    trial_id: str
    number: int
    spec: JobSpec
    recorders: list[TrialRecorder]
    checkpoints: list[Checkpoint]


@retry_transient
def _claim(
    rt: Runtime, trial_ids: list[str], token: str
) -> tuple[str, dict[str, Any], Path, bool, str, list[tuple[str, int]]]:
    """Claim what is queued (or lost by its worker); trials of a search that stopped running are stopped."""
    claimed: list[tuple[str, int]] = []
    with session_scope(rt.sessions) as session:
        trials = TrialStore(session)
        job = JobStore(session).get_any(trials.get(trial_ids[0]).job_id)
        for trial_id in trial_ids:
            trial = trials.get(trial_id)
            if job.status != JobStatus.RUNNING:
                # Checked before claiming, so a trial of a cancelled search never starts.
                if trial.status == TrialStatus.QUEUED:
                    trials.finish(trial_id, TrialStatus.STOPPED, reason="search no longer running")
                continue
            outcome = trials.claim(trial_id, token, worker=rt.holder, takeover=rt.takeover())
            if outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.TAKEN_OVER):
                if trials.get(trial_id).attempt > rt.settings.max_attempts:
                    message = f"worker lost {trials.get(trial_id).attempt - 1} times"
                    trials.finish(
                        trial_id, TrialStatus.FAILED, reason=message, lease_token=token, error=message
                    )
                    continue
                claimed.append((trial_id, trial.number))
        dataset = DatasetStore(session).get_any(job.dataset_id)
        return (
            job.id,
            dict(job.spec),
            rt.settings.data_dir / dataset.storage_key,
            dataset.has_header,
            job.target,
            claimed,
        )


def _run_population(trial_ids: list[str]) -> None:
    rt = runtime()
    token = secrets.token_hex(16)
    job_id, document, csv_path, has_header, target, claimed_ids = _claim(rt, trial_ids, token)
    structlog.contextvars.bind_contextvars(job_id=job_id, trial_ids=[t for t, _ in claimed_ids])
    if claimed_ids:
        # The leases and the cancel watch start at claim time, before TensorFlow's multi-second import.
        claimed, search = _prepare(rt, job_id, document, claimed_ids, token)
        with ExitStack() as stack:
            for trial in claimed:
                stack.enter_context(trial.recorders[0].heartbeat())
            try:
                _train(rt, job_id, claimed, search, csv_path, has_header, target)
            except Exception as exc:
                if is_transient(exc):
                    # The database stayed away: leave the trials running; their leases lapse and they
                    # resume from their checkpoints elsewhere.
                    log.warning("population_left_for_reaper", job_id=job_id, error=type(exc).__name__)
                    return
                # A broken population fails its trials, never the search.
                log.error("population_crashed", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
                for trial in claimed:
                    _fail(rt, trial.trial_id, token, f"{type(exc).__name__}: {exc}", None)
            for trial in claimed:
                # Kept for whoever resumes it: a trial taken over, or handed back at shutdown.
                primary = trial.recorders[0]
                if not primary.lease_lost and not primary.handing_back():
                    for checkpoint in trial.checkpoints:
                        checkpoint.discard()
    nudge(rt, job_id)


@retry_transient
def _prepare(
    rt: Runtime, job_id: str, document: dict[str, Any], claimed_ids: list[tuple[str, int]], token: str
) -> tuple[list[Claimed], SearchSpec]:
    with session_scope(rt.sessions) as session:
        values = {t.id: dict(t.hyperparameters) for t in TrialStore(session).for_job(job_id)}
    claimed, search = [], None
    for trial_id, number in claimed_ids:
        spec, search = trial_spec(document, values[trial_id])
        primary = TrialRecorder(rt, job_id, trial_id, token, execution=0)
        recorders = [primary]
        for execution in range(1, search.executions_per_trial * spec.evaluation.folds):
            extra = TrialRecorder(rt, job_id, trial_id, token, execution=execution)
            extra.share_watch(primary)
            recorders.append(extra)
        checkpoints = [
            open_checkpoint(rt, job_id, trial_id, number=number, execution=e) for e in range(len(recorders))
        ]
        claimed.append(Claimed(trial_id, number, spec, recorders, checkpoints))
    assert search is not None
    return claimed, search


@retry_transient
def _fail(rt: Runtime, trial_id: str, token: str, message: str, diagnostics: dict[str, Any] | None) -> None:
    with session_scope(rt.sessions) as session:
        TrialStore(session).finish(
            trial_id,
            TrialStatus.FAILED,
            reason="training failed",
            lease_token=token,
            error=message,
            diagnostics=diagnostics,
        )
        count_trial(session, "failed")


def _executions(trial: Claimed) -> list[JobSpec]:
    """One spec per execution: each fold in turn (fold-major), then another seed for each repeat.

    Repeats differ only by their seed, as keras-tuner's repeated fits differ by initialization.
    """
    spec, folds = trial.spec, trial.spec.evaluation.folds
    return [
        spec.model_copy(
            update={
                "training": spec.training.model_copy(update={"seed": spec.training.seed + e // folds}),
                "evaluation": spec.evaluation.model_copy(update={"fold": e % folds}),
            }
        )
        for e in range(len(trial.recorders))
    ]


def _train(
    rt: Runtime,
    job_id: str,
    claimed: list[Claimed],
    search: SearchSpec,
    csv_path: Path,
    has_header: bool,
    target: str,
) -> None:
    from worker.training.engines import Run, choose_engine
    from worker.training.train import train_runs

    runs = [
        Run(spec, recorder, None, checkpoint)
        for trial in claimed
        for spec, recorder, checkpoint in zip(
            _executions(trial), trial.recorders, trial.checkpoints, strict=True
        )
    ]
    choices = {choose_engine(run.spec) for run in runs}
    _note_engine(rt, job_id, claimed, choices)
    results = iter(train_runs(csv_path=csv_path, has_header=has_header, target=target, runs=runs))
    outcomes = [[next(results) for _ in trial.recorders] for trial in claimed]
    _record(rt, claimed, search, outcomes)


@retry_transient
def _note_engine(rt: Runtime, job_id: str, claimed: list[Claimed], choices: set[Any]) -> None:
    numbers = ", ".join(str(t.number) for t in claimed)
    how = "; ".join(f"{c.engine} engine ({c.reason})" for c in sorted(choices, key=lambda c: c.engine))
    together = f"together as one population of {len(claimed)}" if len(claimed) > 1 else "alone"
    with session_scope(rt.sessions) as session:
        JobStore(session).note(job_id, reason=f"trials {numbers} trained {together} on the {how}")


def _record(rt: Runtime, claimed: list[Claimed], search: SearchSpec, outcomes: list[list[Any]]) -> None:
    """Finish every trial of the population; its best trial (every one, to ensemble) keeps a model file."""
    objective, direction = search.objective or "val_loss", search.direction or "max"
    pick = max if direction == "max" else min
    scored: list[tuple[Claimed, float, Any]] = []
    handed_back: list[str] = []
    for trial, results in zip(claimed, outcomes, strict=True):
        primary = trial.recorders[0]
        if any(r.cancelled for r in results) and primary.handing_back() and not primary.cancel_requested:
            handed_back.append(trial.trial_id)  # checkpointed: resumes on another worker
            continue
        failure = next((r.failure for r in results if r.failure is not None), None)
        if failure is not None:
            _fail(
                rt,
                trial.trial_id,
                primary.token,
                f"{failure.code}: {failure}",
                failure.details.get("diagnostics"),
            )
            continue
        if any(r.cancelled for r in results) or primary.lease_lost:
            if not primary.lease_lost:
                with session_scope(rt.sessions) as session:
                    TrialStore(session).finish(
                        trial.trial_id,
                        TrialStatus.STOPPED,
                        reason="search cancelled",
                        lease_token=primary.token,
                        error="cancelled",
                    )
            continue
        maybe = [score_of(r.metrics, objective) for r in results]
        scores = [s for s in maybe if s is not None]
        if len(scores) < len(maybe):
            message = f"objective_missing: the run produced no finite {objective}"
            _fail(rt, trial.trial_id, primary.token, message, None)
            continue
        if trial.spec.evaluation.folds > 1:
            # The kept model is fold 0's, the split the job's closing evaluation scores it on.
            best = results[0]
        else:
            best = pick(zip(scores, results, strict=True), key=lambda item: item[0])[1]
        scored.append((trial, statistics.fmean(scores), best))
    if handed_back:
        hand_back_trials(rt, handed_back, claimed[0].recorders[0].token)
    winner = pick(scored, key=lambda item: item[1])[0] if scored else None
    # An ensemble, or the configurations a refit of several trials retrains, is chosen at the end of the
    # search on the trials' own validation outputs, from any population: every trial keeps its model.
    # Each coordinator step then drops those ranked past the candidates (coordinator.outranked).
    keep_all = bool(claimed) and models_kept(claimed[0].spec) > 0
    for trial, score, best in scored:
        if trial.recorders[0].should_stop():
            continue  # cancelled or lease lost while the last chunk ran: the trial is no longer ours
        keep = trial is winner or keep_all
        results = outcomes[claimed.index(trial)]
        folds = trial.spec.evaluation.folds
        if keep:
            _save_best(rt, trial.trial_id, best)
        if keep_all and folds > 1:
            # Every fold's model, so the final step judges trials on out-of-fold outputs of every row.
            paths = fold_model_files(rt, trial.trial_id, folds)
            for result, path in zip(results[1:folds], paths[1:], strict=True):
                result.save(path)
        metrics = best.trial_metrics() | {
            "engine": best.engine.engine if best.engine else None,
            "executions": [
                {
                    "score": score_of(r.metrics, objective),
                    "epochs_run": r.epochs_run,
                    "best_epoch": r.best_epoch,
                    "fold": e % folds,
                }
                for e, r in enumerate(results)
            ],
        }
        if folds > 1:
            values = [score_of(r.metrics, objective) or 0.0 for r in results]
            metrics["cross_validation"] = {
                "folds": folds,
                "mean": score,
                "std": statistics.pstdev(values),
            }
        with session_scope(rt.sessions) as session:
            TrialStore(session).finish(
                trial.trial_id,
                TrialStatus.COMPLETED,
                reason="trained",
                lease_token=trial.recorders[0].token,
                score=score,
                metrics=metrics,
                diagnostics=best.diagnostics,
                model_key=str(trial_files(rt, trial.trial_id)[0]) if keep else None,
            )
            count_trial(session, "completed", trial.recorders[0].started)


def _save_best(rt: Runtime, trial_id: str, best: Any) -> None:
    """Write the trial's model and its card (input schema, metrics, sha256) where the search finds them."""
    model_file, card_file = trial_files(rt, trial_id)
    sha = best.save(model_file)
    card = {"task": best.task, "input_schema": best.input_schema, "metrics": best.metrics, "sha256": sha}
    write_whole(card_file, json.dumps(card).encode())
