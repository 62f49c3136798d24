"""The search coordinator: one step tells the oracle what finished, asks it for more, or finishes the search.

Trials are handed out in populations (``population_size`` trials per worker task, trained together by
the fast engine); ``worker.trial_tasks`` runs them; ``worker.training.oracle`` drives keras-tuner.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from models.base import utcnow
from models.db import session_scope
from models.search_space import SearchSpace, extract_space, materialize
from models.spec import JobSpec, SearchSpec
from models.status import TERMINAL, JobStatus, TrialStatus
from models.store import DatasetStore, JobStore, TrialStore
from models.tables import Job, Trial
from worker.db_retry import retry_transient
from worker.files import (
    checkpoint_file,
    ensemble_file,
    refit_files,
    refit_lock_file,
    selection_models,
    trial_files,
)
from worker.finish import ModelFile, end_job
from worker.runtime import Runtime

log = structlog.get_logger(__name__)
FINISHED = (TrialStatus.COMPLETED, TrialStatus.FAILED)


MAX_AUTO_POPULATION = 64  # trials per task when the oracle can hand out many at once


@dataclass
class StepOutcome:
    """What a step decided: populations of trials to dispatch, one task each (after commit)."""

    dispatch: list[list[str]] = field(default_factory=list)
    # Trials whose files (model, card) go once the step's transaction has committed.
    discard: list[str] = field(default_factory=list)
    # The search is over and wants its best trial (this id) refitted before it finishes (after commit).
    refit: str | None = None


def population_size(search: SearchSpec) -> int:
    """Trials per task: random proposals do not wait on results, so a random search's trials are spread
    over ``max_concurrent_trials`` tasks; grid, Bayesian and Hyperband oracles propose from results."""
    if search.population_size is not None:
        return search.population_size
    if search.algorithm == "random":
        return min(MAX_AUTO_POPULATION, max(1, math.ceil(search.max_trials / search.max_concurrent_trials)))
    return 1


def search_parts(document: dict[str, Any]) -> tuple[JobSpec, SearchSpace, SearchSpec]:
    """A search job's stored spec as (spec with defaults, space, resolved search options)."""
    space = extract_space(document)
    spec = JobSpec.model_validate(space.base)
    assert spec.search is not None
    return spec, space, spec.search


def trial_spec(document: dict[str, Any], values: dict[str, Any]) -> tuple[JobSpec, SearchSpec]:
    """The concrete spec of one trial, and the search options it is scored by."""
    _, space, search = search_parts(document)
    concrete = materialize(space, values)
    if "tuner/epochs" in values:  # Hyperband decides each trial's budget
        concrete.setdefault("training", {})["epochs"] = int(values["tuner/epochs"])
    return JobSpec.model_validate(concrete), search


def ranked(trials: Sequence[Trial], direction: str | None) -> list[Trial]:
    """Completed, scored trials, best first (ties: the earlier trial, as ``trials`` are in order)."""
    scored = [t for t in trials if t.status == TrialStatus.COMPLETED and t.score is not None]
    return sorted(scored, key=lambda t: t.score, reverse=direction != "min")  # type: ignore[arg-type,return-value]


def models_kept(spec: JobSpec) -> int:
    """How many of a search's best trials keep their models until its end (0: each population's best
    alone): the candidates its refit (2 x refit_trials) or its ensemble (2 x ensemble) chooses among."""
    evaluation = spec.evaluation
    if evaluation.refit and evaluation.refit_trials > 1:
        return 2 * evaluation.refit_trials
    return 2 * evaluation.ensemble if evaluation.ensemble > 1 else 0


def outranked(trials: Sequence[Trial], direction: str, kept: int) -> list[Trial]:
    """Trials ranked past the ``kept`` best (none when nothing is kept): later trials only push them
    further down, so the search's end never reads their models."""
    return ranked(trials, direction)[kept:] if kept else []


def _best(trials: list[Trial], direction: str) -> Trial | None:
    return next(iter(ranked(trials, direction)), None)


def _stop_reason(job: Job, search: SearchSpec, best: Trial | None) -> str | None:
    if search.target_score is not None and best is not None and best.score is not None:
        reached = (
            best.score >= search.target_score
            if search.direction == "max"
            else (best.score <= search.target_score)
        )
        if reached:
            return f"target {search.objective} {search.target_score} reached by trial {best.number}"
    spent = utcnow() - job.started_at if job.started_at else timedelta(0)
    if search.max_wallclock_s and spent > timedelta(seconds=search.max_wallclock_s):
        return f"wall-clock budget of {search.max_wallclock_s:.0f} s spent"
    return None


def _model_file(rt: Runtime, best: Trial) -> ModelFile:
    model_file, card_file = trial_files(rt, best.id)
    card = json.loads(card_file.read_text())
    return ModelFile(model_file, best.id, card["task"], card["input_schema"], card["metrics"], card["sha256"])


def _final_model(
    rt: Runtime, rows: list[Trial], best: Trial, model: ModelFile, spec: JobSpec, data: dict[str, Any]
) -> tuple[ModelFile, list[int]]:
    """The best trial's ``model``, its refit (evaluation.refit), or the mean of up to k trials' chosen
    on validation (evaluation.ensemble)."""
    if spec.evaluation.refit:
        return _refitted(rt, best, model), [best.number]
    most = spec.evaluation.ensemble
    if most < 2:
        return model, [best.number]
    direction = spec.search.direction if spec.search else "max"
    kept = [t for t in ranked(rows, direction) if t.model_key]
    # The best trial first, then the next best as candidates (each one loaded and run on validation).
    candidates = [best] + [t for t in kept if t.id != best.id and trial_files(rt, t.id)[0].is_file()]
    candidates = candidates[: models_kept(spec)]  # the models each step keeps (models_kept)
    if len(candidates) < 2:
        return model, [best.number]
    from worker.training.ensemble import build_ensemble
    from worker.training.evaluation import choose_members

    try:
        chosen = choose_members(
            **data,
            spec=spec,
            candidates=selection_models(rt, [t.id for t in candidates], spec.evaluation.folds),
            input_schema=model.input_schema,
            most=most,
        )
        if chosen == [0]:  # the best trial alone (its own model)
            return model, [best.number]
        # Under the one-standard-error rule the choice may be another trial alone: saved the same way.
        members = [candidates[i] for i in chosen]
        path = ensemble_file(rt, best.id)
        sha = build_ensemble([trial_files(rt, t.id)[0] for t in members], path)
    except Exception as exc:  # the search still has its best trial's model: never lose it to this step
        log.warning("ensemble_failed", job_id=best.job_id, error=f"{type(exc).__name__}: {exc}")
        return model, [best.number]
    return replace(model, path=path, sha256=sha), [t.number for t in members]


def _refitted(rt: Runtime, best: Trial, model: ModelFile) -> ModelFile:
    """The refit model in place of the best trial's (its card says how it was trained), if it was made."""
    path, card_file = refit_files(rt, best.id)
    card: dict[str, Any] = (
        json.loads(card_file.read_text()) if card_file.is_file() else {"failed": "no refit was made"}
    )
    if "failed" in card:
        return replace(model, metrics=model.metrics | {"refit_error": card["failed"]})
    # Its validation rows were trained on: only the test rows (scored next) judge it.
    # The card keeps its scores; how the refit was made ({epochs, train_rows, seeds, trials, networks})
    # goes to the job's best (a refit written before seeds and trials existed was one network of the
    # best; one written before networks, each trial once from each seed).
    refit = {"seeds": 1, "trials": [best.number]} | card["refit"]
    refit.setdefault("networks", [refit["seeds"]] * len(refit["trials"]))
    metrics = {"train_rows": refit["train_rows"], "refit": refit}
    return ModelFile(path, best.id, card["task"], card["input_schema"], metrics, card["sha256"])


def discard_files(rt: Runtime, trial_ids: list[str]) -> None:
    """Delete trials' model files, cards and checkpoints (the job registered what it keeps as a hard link)."""
    for trial_id in trial_ids:
        made = (*trial_files(rt, trial_id), *refit_files(rt, trial_id))
        for path in (*made, ensemble_file(rt, trial_id), refit_lock_file(rt, trial_id)):
            path.unlink(missing_ok=True)
        for fold_model in made[0].parent.glob(f"{trial_id}.fold*.keras"):
            fold_model.unlink(missing_ok=True)
        for leftover in checkpoint_file(rt, trial_id).parent.glob(f"{trial_id}*.ckpt*"):
            leftover.unlink(missing_ok=True)


@retry_transient
def step_once(rt: Runtime, job_id: str) -> StepOutcome | None:
    """One coordinator step in one transaction; None when another step won the race (retry)."""
    with session_scope(rt.sessions) as session:
        jobs, trial_store = JobStore(session), TrialStore(session)
        job = jobs.get_any(job_id)
        status = JobStatus(job.status)
        if status in TERMINAL or status == JobStatus.QUEUED:
            return StepOutcome()
        rows = list(trial_store.for_job(job_id))
        if status == JobStatus.CANCELLING:
            for trial in rows:
                if trial.status == TrialStatus.QUEUED:
                    trial_store.finish(trial.id, TrialStatus.STOPPED, reason="search cancelled")
            if not any(t.status == TrialStatus.RUNNING for t in rows):
                end_job(
                    rt,
                    session,
                    job_id,
                    JobStatus.CANCELLED,
                    reason="search cancelled",
                    lease_token=job.lease_token,
                )
                return StepOutcome(discard=[t.id for t in rows])
            return StepOutcome()
        # keras-tuner (and TensorFlow) load only past this point: a cancel step stays instant.
        from worker.training.oracle import OracleBusy, SearchExhausted, driver

        spec, space, search = search_parts(job.spec)
        saved = job.search_state or {}
        told: set[int] = set(saved.get("told", []))
        oracle_ids: dict[str, str] = dict(saved.get("oracle_ids", {}))
        outcome = StepOutcome()
        failure: str | None = None
        with driver(
            search, space, saved.get("kt"), seed=spec.training.seed, max_epochs=spec.training.epochs
        ) as step:
            for trial in rows:
                if trial.status in FINISHED and trial.number not in told:
                    told.add(trial.number)
                    try:
                        step.finish(
                            oracle_ids[str(trial.number)],
                            score=trial.score,
                            failed_message=trial.error if trial.status == TrialStatus.FAILED else None,
                        )
                    except RuntimeError as exc:  # keras-tuner: too many consecutive failed trials
                        failure = str(exc).strip().splitlines()[0]
            best = _best(rows, search.direction or "max")
            # A search that keeps every trial's model drops those that can no longer be chosen, as it
            # goes: a long search's disk use stays at the candidates', not its trial count's.
            outcome.discard = [
                t.id
                for t in outranked(rows, search.direction or "max", models_kept(spec))
                if trial_files(rt, t.id)[0].is_file()
            ]
            reason = failure or _stop_reason(job, search, best)
            active = [t for t in rows if t.status in (TrialStatus.QUEUED, TrialStatus.RUNNING)]
            exhausted = len(rows) >= search.max_trials
            size = population_size(search)
            proposed: list[str] = []
            while reason is None and not exhausted and len(active) < search.max_concurrent_trials * size:
                number = len(rows) + len(proposed)
                try:
                    proposal = step.propose(number)
                except SearchExhausted:
                    exhausted = True
                    break
                except OracleBusy:
                    break
                try:
                    trial = trial_store.add_queued(job_id, number, hyperparameters=proposal["values"])
                except IntegrityError:
                    # A concurrent step (a second search_step, a re-sent message) took this trial
                    # number first: it won the race; this step retries from the new state.
                    session.rollback()
                    return None
                oracle_ids[str(number)] = proposal["oracle_trial_id"]
                proposed.append(trial.id)
                active.append(trial)
                exhausted = number + 1 >= search.max_trials
            outcome.dispatch = [proposed[i : i + size] for i in range(0, len(proposed), size)]
            state = {"kt": step.snapshot(), "told": sorted(told), "oracle_ids": oracle_ids}
        if reason is not None:
            for trial in active:
                if trial.status == TrialStatus.QUEUED:
                    trial_store.finish(trial.id, TrialStatus.STOPPED, reason=reason, error=reason)
            active = [t for t in active if t.status == TrialStatus.RUNNING]
        done = sum(1 for t in rows if t.status in FINISHED)
        if not jobs.save_search_state(
            job_id, state, version=job.search_version, trials_done=done, trials_total=search.max_trials
        ):
            session.rollback()
            return None
        if not active and not outcome.dispatch and (reason is not None or exhausted):
            refit_due = failure is None and best is not None and spec.evaluation.refit
            if refit_due and best is not None and not refit_files(rt, best.id)[1].is_file():
                outcome.refit = best.id  # trained outside this transaction; the next step finishes
                return outcome
            _finish_search(rt, session, job, rows, spec, failure, reason)
            outcome.discard = [t.id for t in rows]
        return outcome


def _finish_search(
    rt: Runtime,
    session: Any,
    job: Job,
    rows: list[Trial],
    spec: JobSpec,
    failure: str | None,
    reason: str | None,
) -> None:
    search = spec.search
    assert search is not None
    best = _best(rows, search.direction or "max")
    if failure is not None or best is None:
        errors = [t.error for t in rows if t.status == TrialStatus.FAILED and t.error]
        message = failure or "no trial completed"
        error = {
            "code": "search_failed",
            "message": message + (f"; last error: {errors[-1]}" if errors else ""),
            "details": {"failed_trials": len(errors)},
        }
        end_job(
            rt,
            session,
            job.id,
            JobStatus.FAILED,
            reason="search failed",
            lease_token=job.lease_token,
            error=error,
        )
    else:
        from worker.training.evaluation import closing_evaluation

        dataset = DatasetStore(session).get_any(job.dataset_id)
        data = {
            "csv_path": rt.settings.data_dir / dataset.storage_key,
            "has_header": dataset.has_header,
            "target": job.target,
        }
        chosen = _model_file(rt, best)
        metrics = chosen.metrics  # the chosen trial's, as selection saw them
        model, members = _final_model(rt, rows, best, chosen, spec, data)
        # Selection is over: the chosen model meets the test rows once, beside the baselines.
        refitted = model.path == refit_files(rt, best.id)[0]
        evaluation = closing_evaluation(
            **data,
            spec=spec,
            model_path=model.path,
            input_schema=model.input_schema,
            trained_on_validation=refitted,
            selection=metrics,
        )
        if refitted:
            evaluation["refit"] = model.metrics.pop("refit")
        elif "refit_error" in model.metrics:
            evaluation["refit_error"] = model.metrics["refit_error"]
        if members != [best.number]:
            # The card describes the saved model: the ensemble's own validation scores.
            model.metrics = evaluation.get("val", {})
            evaluation["ensemble"] = {"members": members, "val": evaluation.get("val", {})}
        model.metrics = model.metrics | evaluation.get("test", {})  # the model card shows its test scores
        summary = {
            "objective": search.objective,
            "direction": search.direction,
            "number": best.number,
            "score": best.score,
            "metrics": metrics,
            "hyperparameters": best.hyperparameters,
            **evaluation,
        }
        if "cross_validation" in (best.metrics or {}):
            summary["cross_validation"] = best.metrics["cross_validation"]  # type: ignore[index]
        end_job(
            rt,
            session,
            job.id,
            JobStatus.SUCCEEDED,
            reason=reason or "all trials done",
            lease_token=job.lease_token,
            model=model,
            best=summary,
        )
    log.info("search_finished", job_id=job.id, best=best.number if best else None, reason=reason)


def score_of(metrics: dict[str, Any], objective: str) -> float | None:
    """The objective's value in a run's final metrics (None if missing or not finite)."""
    value = metrics.get(objective)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
