"""Which trials' models a search keeps to its end: the candidates its refit or ensemble chooses among."""

from __future__ import annotations

from models.spec import JobSpec
from models.status import TrialStatus
from models.tables import Trial
from worker.coordinator import models_kept, outranked, ranked


def _spec(evaluation: dict[str, object]) -> JobSpec:
    return JobSpec.model_validate({"task": "binary", "evaluation": evaluation})


def test_a_refit_of_t_picks_or_an_ensemble_of_k_keeps_twice_as_many_best_models() -> None:
    assert models_kept(_spec({})) == 0  # only each population's best, as before
    assert models_kept(_spec({"refit": True})) == 0  # the best trial's configuration alone
    assert models_kept(_spec({"refit": True, "refit_trials": 5})) == 10
    assert models_kept(_spec({"ensemble": 3})) == 6


def test_trials_ranked_past_the_kept_candidates_are_the_ones_dropped() -> None:
    scores = [0.70, 0.91, None, 0.85, 0.91, 0.60]  # trial 2 failed: no score
    trials = [
        Trial(
            id=f"t{n}",
            number=n,
            status=TrialStatus.COMPLETED if score is not None else TrialStatus.FAILED,
            score=score,
        )
        for n, score in enumerate(scores)
    ]
    trials.append(Trial(id="t6", number=6, status=TrialStatus.RUNNING, score=None))
    assert [t.number for t in ranked(trials, "max")] == [1, 4, 3, 0, 5]  # ties: the earlier first
    assert [t.number for t in outranked(trials, "max", 3)] == [0, 5]
    assert [t.number for t in outranked(trials, "min", 3)] == [1, 4]  # loss-like: lower is better
    assert outranked(trials, "max", 0) == []  # nothing kept beyond the populations' winners: no pruning
    # A later, better trial only pushes the others down: one dropped before is never needed again.
    better = Trial(id="t7", number=7, status=TrialStatus.COMPLETED, score=0.99)
    assert {t.number for t in outranked([*trials, better], "max", 3)} >= {0, 5}
