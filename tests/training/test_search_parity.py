"""tuneforge's distributed search proposes what keras-tuner's own RandomSearch proposes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np
import pytest

from models.search_space import SearchSpace, extract_space
from models.spec import JobSpec, resolve_spec, stored_spec
from models.status import JobKind
from models.tabular import parse_csv
from tests.support import GUIDE_SEARCH
from tests.training.conftest import Collector
from worker.coordinator import trial_spec
from worker.training.engines import Run
from worker.training.oracle import SearchExhausted, driver
from worker.training.reference import guide_build
from worker.training.train import train_runs


def _resolved(raw: dict[str, Any]) -> tuple[JobSpec, SearchSpace]:
    columns = parse_csv(b"a,b,y\n1,2,0\n2,1,1\n3,3,0\n").columns
    spec = resolve_spec(raw, kind=JobKind.SEARCH, target="y", columns=columns)
    return spec, extract_space(stored_spec(raw, spec, kind=JobKind.SEARCH))


def _two_choices(algorithm: str, *, trials: int) -> dict[str, Any]:
    """A search of ``algorithm`` over an optimizer and a learning rate (six points), 9 epochs."""
    return {
        "training": {
            "epochs": 9,
            "optimizer": {"choice": ["adam", "sgd"]},
            "learning_rate": {"choice": [0.001, 0.01, 0.1]},
        },
        "search": {"algorithm": algorithm, "max_trials": trials},
    }


def _one_step_at_a_time(spec: JobSpec, space: SearchSpace, *, trials: int, seed: int) -> list[dict[str, Any]]:
    """Each trial's values, proposed one coordinator step at a time and scored before the next."""
    assert spec.search is not None
    proposed, state = [], None
    for number in range(trials):
        # Each step rebuilds the oracle from its saved JSON state, as a coordinator on any worker does.
        with driver(spec.search, space, state, seed=seed, max_epochs=100) as step:
            trial = step.propose(number)
            proposed.append(trial["values"])
            step.finish(trial["oracle_trial_id"], score=0.5 + number / 100, failed_message=None)
            state = step.snapshot()
    return proposed


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

    spec, space = _resolved(GUIDE_SEARCH)
    assert spec.search is not None
    proposed = _one_step_at_a_time(spec, space, trials=10, seed=7)
    assert proposed == expected

    # A population: all 10 handed out at once, before any has a result, as one coordinator step does.
    # Still keras-tuner's sequence: each proposal grows the space (the deeper layers' units, activations
    # and dropouts) before the next is sampled, so later trials do not fall back to those defaults.
    with driver(spec.search, space, None, seed=7, max_epochs=100) as step:
        population = [step.propose(number)["values"] for number in range(10)]
    assert population == expected
    deep = [v for v in population[1:] if v["num_layers"] > 1]
    assert deep and any(v[f"units{i}"] != 8 for v in deep for i in range(1, v["num_layers"]))


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "hyperband"])
def test_a_search_seeded_0_proposes_the_same_trials_on_every_run(algorithm: str) -> None:
    """Seed 0 is a seed like any other (keras-tuner's own oracles take it for none and draw one)."""
    raw = GUIDE_SEARCH | {"search": GUIDE_SEARCH["search"] | {"algorithm": algorithm}}
    spec, space = _resolved(raw | {"training": GUIDE_SEARCH["training"] | {"seed": 0}})
    assert spec.search is not None and spec.training.seed == 0
    runs = []
    for _ in range(3):
        # The seed the coordinator hands its oracle: the resolved spec's.
        with driver(spec.search, space, None, seed=spec.training.seed, max_epochs=100) as step:
            runs.append([step.propose(number)["values"] for number in range(6)])
    assert runs[0] == runs[1] == runs[2]
    assert len({v["num_layers"] for v in runs[0]}) > 1  # drawn at random, not the defaults


@pytest.mark.parametrize("algorithm", ["bayesian", "hyperband", "grid"])
def test_every_oracle_resumes_from_saved_state_at_each_step(algorithm: str) -> None:
    """Bayesian, Hyperband and grid oracles survive a rebuild from JSON between every trial."""
    spec, space = _resolved(_two_choices(algorithm, trials=6))
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


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_initial_trials_run_first_and_the_oracle_draws_the_rest(algorithm: str) -> None:
    """search.initial_trials: the first trials take their values (the rest drawn), then the oracle's own."""
    raw = dict(GUIDE_SEARCH) | {
        "search": GUIDE_SEARCH["search"]
        | {
            "algorithm": algorithm,
            "max_trials": 5,
            "initial_trials": [
                {"num_layers": 3, "units0": 64, "units1": 32, "units2": 16},
                {"optimizer": "sgd", "num_layers": 1},
            ],
        }
    }
    spec, space = _resolved(raw)
    proposed = _one_step_at_a_time(spec, space, trials=5, seed=3)
    first, second = proposed[0], proposed[1]
    assert (first["num_layers"], first["units0"], first["units1"], first["units2"]) == (3, 64, 32, 16)
    assert (second["optimizer"], second["num_layers"]) == ("sgd", 1)
    # What they leave out is still drawn (every trial differs), and the trials after them are the oracle's.
    assert len({repr(sorted(v.items())) for v in proposed}) == 5
    # Each trial's concrete spec builds exactly those layers.
    from models.search_space import materialize

    assert [layer["units"] for layer in materialize(space, first)["model"]["layers"]] == [64, 32, 16]


@pytest.mark.parametrize(
    ("initial", "words"),
    [
        ({"units10": 64}, "'units10' is not a searched parameter"),
        ({"optimizer": "lbfgs"}, "'lbfgs' is outside"),
        ({"num_layers": 11}, "11 is outside"),
        ({"units0": 2.5}, "2.5 is outside"),
    ],
)
def test_initial_trials_outside_the_space_are_422_naming_the_value(initial: dict, words: str) -> None:
    from models.errors import InvalidInput

    raw = dict(GUIDE_SEARCH) | {"search": GUIDE_SEARCH["search"] | {"initial_trials": [initial]}}
    columns = parse_csv(b"a,b,y\n1,2,0\n2,1,1\n3,3,0\n").columns
    with pytest.raises(InvalidInput, match=r"spec\.search\.initial_trials\.0") as caught:
        resolve_spec(raw, kind=JobKind.SEARCH, target="y", columns=columns)
    assert words in str(caught.value)
    grid = dict(GUIDE_SEARCH) | {
        "search": GUIDE_SEARCH["search"] | {"algorithm": "grid", "initial_trials": [{}]}
    }
    with pytest.raises(InvalidInput, match="random or bayesian"):
        resolve_spec(grid, kind=JobKind.SEARCH, target="y", columns=columns)


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "hyperband", "grid"])
def test_oracle_steps_print_nothing_to_the_workers_log(
    algorithm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """keras-tuner's trial tables stay out of stdout (Celery logs a worker's stdout as warnings)."""
    spec, space = _resolved(_two_choices(algorithm, trials=3))
    assert len(_one_step_at_a_time(spec, space, trials=3, seed=3)) == 3
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_a_search_over_optimizers_trains_each_at_its_keras_default_rate(
    data: dict[str, Path], engine: str
) -> None:
    """As the guide's script, whose compile(optimizer="sgd") trains at 0.01: a trial's optimizer brings
    its own Keras default rate when the spec sets none, and the spec's rate when it does."""
    csv, columns = data["breast_cancer"], parse_csv(data["breast_cancer"].read_bytes()).columns
    rates = {}
    for given in ({}, {"learning_rate": 0.05}):
        training = {"epochs": 2, "engine": engine, "optimizer": {"choice": ["adam", "sgd"]}} | given
        raw = {"training": training, "search": {"max_trials": 2}}
        spec = resolve_spec(raw, kind=JobKind.SEARCH, target="target", columns=columns)
        document = stored_spec(raw, spec, kind=JobKind.SEARCH)
        trials = [trial_spec(document, {"optimizer": name})[0] for name in ("adam", "sgd")]
        collectors = [Collector() for _ in trials]
        runs = [Run(s, c, None) for s, c in zip(trials, collectors, strict=True)]
        results = train_runs(csv_path=csv, has_header=True, target="target", runs=runs)
        assert all(r.failure is None and r.engine is not None and r.engine.engine == engine for r in results)
        rates[str(given)] = [sorted({round(v["lr"], 6) for _, v, _ in c.epochs}) for c in collectors]
    assert rates == {"{}": [[0.001], [0.01]], "{'learning_rate': 0.05}": [[0.05], [0.05]]}
    # A train job shows the rate it trains at.
    train_spec = resolve_spec(
        {"training": {"optimizer": "sgd"}}, kind=JobKind.TRAIN, target="target", columns=columns
    )
    assert train_spec.training.learning_rate == 0.01
