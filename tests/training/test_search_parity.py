"""tuneforge's distributed search proposes what keras-tuner's own RandomSearch proposes."""

from __future__ import annotations

from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest

from models.search_space import extract_space
from models.spec import resolve_spec, stored_spec
from models.status import JobKind
from models.tabular import parse_csv
from tests.support import GUIDE_SEARCH
from worker.training.oracle import SearchExhausted, driver
from worker.training.reference import guide_build


def test_random_search_proposes_keras_tuners_sequence_with_the_same_seed(tmp_path: Path) -> None:
    """Same space, same seed, one trial at a time: the same hyperparameters in the same order."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)), rng.integers(0, 2, 64)
    tuner = kt.RandomSearch(
        guide_build(4),
        objective="val_accuracy",
        max_trials=10,
        seed=7,
        directory=str(tmp_path),
        project_name="guide",
    )
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    expected = [tuner.oracle.trials[t].hyperparameters.values for t in sorted(tuner.oracle.trials)]

    columns = parse_csv(b"a,b,y\n1,2,0\n2,1,1\n3,3,0\n").columns
    spec = resolve_spec(GUIDE_SEARCH, kind=JobKind.SEARCH, target="y", columns=columns)
    space = extract_space(stored_spec(GUIDE_SEARCH, spec, kind=JobKind.SEARCH))
    assert spec.search is not None
    proposed, state = [], None
    for number in range(10):
        # Each step rebuilds the oracle from its saved JSON state, as a coordinator on any worker does.
        with driver(spec.search, space, state, seed=7, max_epochs=100) as step:
            trial = step.propose(number)
            proposed.append(trial["values"])
            step.finish(trial["oracle_trial_id"], score=0.5, failed_message=None)
            state = step.snapshot()
    assert proposed == expected

    # A population: all 10 handed out at once, before any has a result, as one coordinator step does.
    # Still keras-tuner's sequence: each proposal grows the space (the deeper layers' units, activations
    # and dropouts) before the next is sampled, so later trials do not fall back to those defaults.
    with driver(spec.search, space, None, seed=7, max_epochs=100) as step:
        population = [step.propose(number)["values"] for number in range(10)]
    assert population == expected
    deep = [v for v in population[1:] if v["num_layers"] > 1]
    assert deep and any(v[f"units{i}"] != 8 for v in deep for i in range(1, v["num_layers"]))


@pytest.mark.parametrize("algorithm", ["bayesian", "hyperband", "grid"])
def test_every_oracle_resumes_from_saved_state_at_each_step(algorithm: str) -> None:
    """Bayesian, Hyperband and grid oracles survive a rebuild from JSON between every trial."""
    raw = {
        "training": {
            "epochs": 9,
            "optimizer": {"choice": ["adam", "sgd"]},
            "learning_rate": {"choice": [0.001, 0.01, 0.1]},
        },
        "search": {"algorithm": algorithm, "max_trials": 6},
    }
    columns = parse_csv(b"a,b,y\n1,2,0\n2,1,1\n3,3,0\n").columns
    spec = resolve_spec(raw, kind=JobKind.SEARCH, target="y", columns=columns)
    space = extract_space(stored_spec(raw, spec, kind=JobKind.SEARCH))
    assert spec.search is not None
    proposed, state = [], None
    for number in range(6):
        with driver(spec.search, space, state, seed=3, max_epochs=9) as step:
            try:
                trial = step.propose(number)
            except SearchExhausted:
                break
            proposed.append(trial["values"])
            step.finish(trial["oracle_trial_id"], score=0.5 + 0.01 * number, failed_message=None)
            state = step.snapshot()
    assert len(proposed) >= 3
    assert all(
        v["optimizer"] in {"adam", "sgd"} and v["learning_rate"] in {0.001, 0.01, 0.1} for v in proposed
    )
    if algorithm == "grid":
        pairs = [(v["optimizer"], v["learning_rate"]) for v in proposed]
        assert len(set(pairs)) == len(pairs) == 6, "a grid never repeats a point"
    if algorithm == "hyperband":
        assert all(1 <= v["tuner/epochs"] <= 9 for v in proposed)
