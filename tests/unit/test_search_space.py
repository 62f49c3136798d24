"""Search specs: distributions validated at submit time, and concrete specs per trial."""

from __future__ import annotations

from typing import Any

import pytest

from models.errors import InvalidInput
from models.search_space import extract_space, materialize
from models.spec import JobSpec, resolve_spec, stored_spec
from models.status import JobKind
from models.tabular import parse_csv
from tests.support import GUIDE_SEARCH as GUIDE

BINARY = parse_csv(b"x,z,y\n1,2,0\n2,3,1\n3,1,0\n4,0,1\n").columns
REGRESSION = parse_csv(b"x,y\n1,0.5\n2,1.7\n3,2.2\n4,9.1\n").columns


def search(spec: dict[str, Any], columns: list[dict[str, Any]] = BINARY) -> JobSpec:
    """Resolve a search spec as the API does."""
    return resolve_spec(spec, kind=JobKind.SEARCH, target="y", columns=columns)


def test_the_guides_full_search_resolves_with_defaults_and_keeps_its_distributions() -> None:
    """The request at the end of API.md is accepted; the stored spec keeps the distributions."""
    spec = search(GUIDE)
    assert spec.search is not None
    assert (spec.search.objective, spec.search.direction) == ("val_accuracy", "max")
    stored = stored_spec(GUIDE, spec, kind=JobKind.SEARCH)
    assert stored["training"]["optimizer"] == {"choice": ["rmsprop", "adam", "sgd", "nadam", "adadelta"]}
    assert stored["search"]["num_layers"] == {"int": [1, 10]}
    assert stored["training"]["epochs"] == 100 and stored["task"] == "binary"


def test_a_trial_spec_is_built_from_keras_tuner_names() -> None:
    """num_layers, units0.., activation0.., dropout0.., optimizer become a concrete, valid spec."""
    space = extract_space(stored_spec(GUIDE, search(GUIDE), kind=JobKind.SEARCH))
    values = {"num_layers": 2, "units0": 72, "activation0": "tanh", "dropout0": 0.3, "optimizer": "rmsprop"}
    concrete = JobSpec.model_validate(materialize(space, values))
    assert [(layer.units, layer.activation, layer.dropout) for layer in concrete.model.layers] == [
        (72, "tanh", 0.3),
        (8, "relu", 0.1),  # units1.. never sampled: keras-tuner's defaults (min, first choice)
    ]
    assert concrete.training.optimizer == "rmsprop"
    assert concrete.search is None


@pytest.mark.parametrize(
    ("spec", "code", "where"),
    [
        ({"training": {"optimizer": {"choice": []}}}, "invalid_search_space", "spec.training.optimizer"),
        ({"training": {"learning_rate": {"float": [0.1, 0.01]}}}, "invalid_search_space", "greater than max"),
        ({"training": {"learning_rate": {"float": [0, 0.1], "log": True}}}, "invalid_search_space", "above"),
        ({"model": {"layers": [{"dropout": {"choice": [0.1, 1.5]}}]}}, "invalid_spec", "dropout"),
        ({"search": {"layer": {"units": {"int": [0, 8]}}, "num_layers": 2}}, "invalid_spec", "units"),
        ({"search": {"max_trials": 100_000}, "training": GUIDE["training"]}, "invalid_spec", "max_trials"),
        ({"search": {**GUIDE["search"], "algorithm": "grid"}}, "invalid_search_space", "grid"),
        ({"search": {"max_trials": 3}}, "invalid_search_space", "nothing to search"),
    ],
)
def test_bad_search_specs_are_422_naming_the_field(spec: dict[str, Any], code: str, where: str) -> None:
    """Empty choices, min > max, log ranges at 0, invalid candidates, caps: each names its field."""
    with pytest.raises(InvalidInput) as caught:
        search(spec)
    assert caught.value.code == code
    assert where in caught.value.detail
    assert caught.value.errors


def test_an_objective_the_task_cannot_produce_is_refused() -> None:
    """val_auc for a regression search is a 422 naming search.objective; val_rmse is fine and minimized."""
    spec = {"training": {"optimizer": {"choice": ["adam", "sgd"]}}}
    with pytest.raises(InvalidInput) as caught:
        search(spec | {"search": {"objective": "val_auc"}}, REGRESSION)
    assert "spec.search.objective" in caught.value.detail
    resolved = search(spec | {"search": {"objective": "val_rmse"}}, REGRESSION)
    assert resolved.search is not None and resolved.search.direction == "min"


def test_distributions_in_a_train_job_are_refused() -> None:
    """A train job names one model: a distribution there is a 422 at its path."""
    with pytest.raises(InvalidInput) as caught:
        spec = {"training": {"optimizer": {"choice": ["adam"]}}}
        resolve_spec(spec, kind=JobKind.TRAIN, target="y", columns=BINARY)
    assert "spec.training.optimizer" in caught.value.detail


def test_a_parameter_allows_its_choices_by_value_and_its_range() -> None:
    """What search.initial_trials may give: 1 for a choice of 1.0, but never True for 1."""
    from models.search_space import Param

    choice = Param("lr", ("training", "learning_rate"), "choice", values=(1.0, 0.1))
    assert choice.allows(1) and choice.allows(0.1) and not choice.allows(True) and not choice.allows(0.5)
    flags = Param("batch_norm", ("model", "batch_norm"), "choice", values=(False, True))
    assert flags.allows(False) and not flags.allows(0)
    units = Param("units0", ("search", "layer", "units"), "int", low=16, high=128, step=16)
    assert units.allows(16) and units.allows(128) and not units.allows(130) and not units.allows(32.0)
    assert not units.allows(20)  # between two steps: never drawn
    rate = Param("learning_rate", ("training", "learning_rate"), "float", low=1e-4, high=3e-2, log=True)
    assert rate.allows(1e-2) and rate.allows(1) is False and not rate.allows("0.01")
