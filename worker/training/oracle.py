"""keras-tuner's oracles driven as a service: state in and out as JSON, trials proposed and scored."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import keras_tuner as kt

from models.search_space import LAYER_FIELDS, Param, SearchSpace
from models.spec import MAX_SEED, SearchSpec


class SearchExhausted(Exception):
    """The oracle has no further trial to propose (max_trials reached or space exhausted)."""


class OracleBusy(Exception):
    """The oracle waits for running trials' results before it proposes more (grid, Hyperband rounds)."""


def define(hp: kt.HyperParameters, param: Param, name: str | None = None) -> Any:
    """Register one parameter with keras-tuner under its keras-tuner name and return its value."""
    name = name or param.name
    sampling = "log" if param.log else "linear"
    if param.kind == "choice":
        return hp.Choice(name, list(param.values))
    if param.kind == "int":
        return hp.Int(name, int(param.low), int(param.high), step=int(param.step or 1), sampling=sampling)
    return hp.Float(name, param.low, param.high, step=param.step, sampling=sampling)


def register(hp: kt.HyperParameters, space: SearchSpace) -> None:
    """What the guide's build function does: depth, then per-layer units/activation/dropout, then the rest.

    Layers deeper than ``num_layers`` are registered only once a trial needs them, exactly as a
    keras-tuner build function registers ``units{i}`` inside its ``for i in range(num_layers)`` loop.
    """
    depth = define(hp, space.num_layers) if space.num_layers else space.fixed_layers or 0
    for index in range(int(depth)):
        for layer_field in LAYER_FIELDS:
            param = space.layer.get(layer_field)
            if isinstance(param, Param):
                define(hp, param, f"{layer_field}{index}")
    for param in space.params:
        define(hp, param)


def make_oracle(search: SearchSpec, *, seed: int, max_epochs: int) -> kt.Oracle:
    """The keras-tuner oracle named by ``search.algorithm``."""
    objective = kt.Objective(search.objective, direction=search.direction)
    common = {
        "objective": objective,
        # keras-tuner draws a seed of its own for a falsy one (``seed or random.randint(1, 10000)``): a
        # search with training.seed 0 proposed other trials on every run. 0 takes the top of the range.
        "seed": seed or MAX_SEED,
        "max_consecutive_failed_trials": search.max_consecutive_failures,
    }
    oracle: kt.Oracle
    if search.algorithm == "random":
        oracle = kt.oracles.RandomSearchOracle(max_trials=search.max_trials, **common)
    elif search.algorithm == "bayesian":
        oracle = kt.oracles.BayesianOptimizationOracle(max_trials=search.max_trials, **common)
    elif search.algorithm == "grid":
        oracle = kt.oracles.GridSearchOracle(max_trials=search.max_trials, **common)
    else:
        oracle = kt.oracles.HyperbandOracle(max_epochs=max_epochs, **common)
    # keras-tuner's console table (a dozen lines per trial begun and ended) went to stdout, which Celery
    # logs at WARNING: 1,700 warning lines in a 70-trial benchmark. Trials are reported through the API.
    oracle.verbose = 0
    return oracle


@dataclass
class Driver:
    """One step's view of a search's oracle, rebuilt from (and saved back to) JSON state."""

    oracle: kt.Oracle
    space: SearchSpace
    initial: list[dict[str, Any]] = field(default_factory=list)  # search.initial_trials

    def snapshot(self) -> dict[str, Any]:
        """The oracle's complete state as JSON: its own state plus every trial's."""
        return {
            "oracle": self.oracle.get_state(),
            "trials": {trial_id: trial.get_state() for trial_id, trial in self.oracle.trials.items()},
            "grid": _grid_state(self.oracle),
        }

    def propose(self, number: int) -> dict[str, Any]:
        """Ask the oracle for trial ``number``: its values once built (new layers at their defaults)."""
        trial = self.oracle.create_trial(tuner_id=f"trial-{number}")
        if trial.status == kt.engine.trial.TrialStatus.STOPPED:
            raise SearchExhausted(trial.message or "the oracle stopped")
        if trial.status == kt.engine.trial.TrialStatus.IDLE:
            raise OracleBusy()
        if number < len(self.initial):
            # The oracle's draw, overridden where the initial trial says (Optuna's enqueue_trial).
            trial.hyperparameters.values.update(self.initial[number])
        register(trial.hyperparameters, self.space)
        # keras-tuner grows its space from each trial's build (end_trial) before it samples the next:
        # grown here too, a population's later trials sample the layers its earlier ones added, as the
        # sequential script does; left to end_trial, every trial of a population proposed at once got
        # the defaults (8 units) past the first search's first layer: cheaper networks, another search.
        self.oracle.update_space(trial.hyperparameters)
        return {"oracle_trial_id": trial.trial_id, "values": dict(trial.hyperparameters.values)}

    def finish(self, oracle_trial_id: str, *, score: float | None, failed_message: str | None) -> None:
        """Tell the oracle a trial's outcome (keras-tuner's end_trial: scores it, grows the space)."""
        trial = self.oracle.trials[oracle_trial_id]
        register(trial.hyperparameters, self.space)
        if failed_message is None and score is not None:
            self.oracle.update_trial(oracle_trial_id, {self.oracle.objective.name: score})
            trial.status = kt.engine.trial.TrialStatus.COMPLETED
        else:
            trial.status = kt.engine.trial.TrialStatus.FAILED
            trial.message = failed_message
        self.oracle.end_trial(trial)


@contextmanager
def driver(
    search: SearchSpec, space: SearchSpace, state: dict[str, Any] | None, *, seed: int, max_epochs: int
) -> Iterator[Driver]:
    """An oracle restored from ``state`` (or fresh), in a scratch folder keras-tuner may write to."""
    oracle = make_oracle(search, seed=seed, max_epochs=max_epochs)
    with tempfile.TemporaryDirectory(prefix="tuneforge-oracle-") as folder:
        oracle._set_project_dir(folder, "search")
        if state is None:
            # keras-tuner's _populate_initial_space: build once with default values.
            hp = oracle.get_space()
            register(hp, space)
            oracle.update_space(hp)
        else:
            oracle.trials = {tid: kt.engine.trial.Trial.from_state(s) for tid, s in state["trials"].items()}
            oracle.set_state(state["oracle"])
            _set_grid_state(oracle, state.get("grid"))
        yield Driver(oracle, space, list(search.initial_trials))


def _grid_state(oracle: kt.Oracle) -> dict[str, Any] | None:
    # keras-tuner's GridSearchOracle keeps its walk order outside get_state(), so it cannot resume
    # on its own; tuneforge saves that order too, since every step rebuilds the oracle.
    if not isinstance(oracle, kt.oracles.GridSearchOracle):
        return None
    ordered = oracle._ordered_ids
    return {
        "memory": list(ordered._memory),
        "next_index": {str(k): v for k, v in ordered._next_index.items()},
        "last_index": ordered._last_index,
        "populate_next": list(oracle._populate_next),
    }


def _set_grid_state(oracle: kt.Oracle, state: dict[str, Any] | None) -> None:
    if state is None or not isinstance(oracle, kt.oracles.GridSearchOracle):
        return
    ordered = oracle._ordered_ids
    ordered._memory = list(state["memory"])
    ordered._data_to_index = {data: index for index, data in enumerate(ordered._memory)}
    ordered._next_index.clear()
    ordered._next_index.update({None if k == "None" else int(k): v for k, v in state["next_index"].items()})
    ordered._last_index = state["last_index"]
    oracle._populate_next = list(state["populate_next"])
