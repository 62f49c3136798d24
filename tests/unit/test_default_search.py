"""The default search space: used only when a search names no distribution, sized to the data."""

from __future__ import annotations

from models.default_search import (
    REFIT_TRIALS,
    default_space,
    searches_nothing,
    with_default_space,
    with_default_training,
)
from models.search_space import extract_space
from models.spec import resolve_spec
from models.status import JobKind

COLUMNS = [
    {"name": "x", "dtype": "numeric", "distinct": 50, "missing": 0},
    {"name": "y", "dtype": "numeric", "distinct": 2, "missing": 0, "integer": True, "min": 0, "max": 1},
]


def test_only_specs_without_a_distribution_search_nothing() -> None:
    assert searches_nothing({}) and searches_nothing({"search": {"max_trials": 3}})
    assert searches_nothing({"training": {"epochs": 5}})
    assert not searches_nothing({"training": {"optimizer": {"choice": ["adam", "sgd"]}}})
    assert not searches_nothing({"search": {"num_layers": {"int": [1, 2]}}})


def test_the_users_values_win_and_the_result_resolves() -> None:
    raw = with_default_space({"training": {"epochs": 7}, "model": {"l2": 0.01}}, rows=500)
    assert raw["training"]["epochs"] == 7 and raw["model"]["l2"] == 0.01
    assert raw["training"]["learning_rate"] == {"float": [1e-4, 3e-2], "log": True}
    spec = resolve_spec(raw, kind=JobKind.SEARCH, target="y", columns=COLUMNS)
    assert spec.search is not None and spec.search.objective == "val_loss"
    assert spec.search.direction == "min"
    assert spec.training.epochs == 7  # the user's
    names = {p.name for p in extract_space(raw).params}
    assert {"learning_rate", "batch_size", "optimizer", "batch_norm"} <= names


def test_small_datasets_get_enough_steps_and_patience() -> None:
    tiny, big = default_space(150)["training"], default_space(20_000)["training"]
    # 120 training rows in batches of 16: 8 steps an epoch; 375 epochs make 3,000 steps.
    assert tiny["epochs"] == 375 and tiny["early_stopping"] == {"patience": 20}
    assert big["epochs"] == 100 and big["early_stopping"] == {"patience": 10}
    kept = with_default_space({"training": {"early_stopping": None}}, rows=150)
    assert kept["training"]["early_stopping"] is None


def test_the_space_follows_the_data_size() -> None:
    small, large = default_space(300), default_space(200_000)
    assert max(small["training"]["batch_size"]["choice"]) < min(large["training"]["batch_size"]["choice"])
    assert small["search"]["layer"]["units"]["int"][1] < large["search"]["layer"]["units"]["int"][1]


def test_fixed_layers_are_left_alone() -> None:
    raw = with_default_space({"model": {"layers": [{"units": 64}]}}, rows=500)
    assert "num_layers" not in raw["search"] and "layer" not in raw["search"]
    assert raw["model"]["layers"] == [{"units": 64}] and "learning_rate" in raw["training"]


def test_a_train_job_on_small_data_gets_enough_epochs_unless_it_chose() -> None:
    """150 rows in batches of 32: 4 steps an epoch, so 750 epochs (patience 20) make 3,000 steps."""
    raw = with_default_training({}, rows=150)
    assert raw["training"] == {"epochs": 750, "early_stopping": {"patience": 20}}
    assert resolve_spec(raw, kind=JobKind.TRAIN, target="y", columns=COLUMNS).training.epochs == 750
    bigger_batches = with_default_training({"training": {"batch_size": 64}}, rows=150)["training"]
    assert bigger_batches["epochs"] == 1_000  # capped
    own_stopping = {"training": {"early_stopping": {"patience": 5, "monitor": "val_accuracy"}}}
    assert with_default_training(own_stopping, rows=150)["training"]["early_stopping"]["patience"] == 5
    for chosen in ({"training": {"epochs": 30}}, {"training": {"early_stopping": None}}):
        assert with_default_training(chosen, rows=150) == chosen
    assert with_default_training({}, rows=20_000) == {}  # the guide's 100 epochs already suffice


def test_the_default_search_refits_unless_the_user_chose_an_ensemble_or_said_no() -> None:
    assert with_default_space({}, rows=500)["evaluation"] == {"refit": True, "refit_trials": REFIT_TRIALS}
    own_count = with_default_space({"evaluation": {"refit_trials": 2, "refit_seeds": 3}}, rows=500)
    assert own_count["evaluation"] == {"refit_trials": 2, "refit_seeds": 3, "refit": True}
    # The one-standard-error rule is the user's to ask for: it joins the default refit's picks.
    ruled = with_default_space({"evaluation": {"one_se_rule": True}}, rows=500)
    spec = resolve_spec(ruled, kind=JobKind.SEARCH, target="y", columns=COLUMNS)
    assert spec.evaluation.one_se_rule and spec.evaluation.refit_trials == REFIT_TRIALS
    assert with_default_space({"evaluation": {"refit": False}}, rows=500)["evaluation"] == {"refit": False}
    ensemble = with_default_space({"evaluation": {"ensemble": 3}}, rows=500)
    assert ensemble["evaluation"] == {"ensemble": 3}
    spec = resolve_spec(ensemble, kind=JobKind.SEARCH, target="y", columns=COLUMNS)
    assert spec.evaluation.ensemble == 3 and not spec.evaluation.refit


def test_the_default_search_starts_from_a_linear_model_and_a_two_layer_network() -> None:
    """Its first trials are set, not drawn: the linear model a small tabular set is often won by."""
    raw = with_default_space({}, rows=500)
    linear, network = raw["search"]["initial_trials"]
    assert linear["num_layers"] == 0 and linear["learning_rate"] == 1e-2
    # Regularized as scikit-learn's LogisticRegression(C=1): |w|^2 / (2 x 400 training rows) ~ 1e-3.
    assert linear["l2"] == 1e-3 and network["l2"] == 1e-4
    assert with_default_space({}, rows=100_000)["search"]["initial_trials"][0]["l2"] == 1e-5
    # The user's own L2 choices: the nearest of theirs to 1/800, not the default list's 1e-3.
    theirs = with_default_space({"model": {"l2": {"choice": [0.0, 1e-2, 1e-1]}}}, rows=500)
    assert theirs["search"]["initial_trials"][0]["l2"] == 1e-2
    only_zero = with_default_space({"model": {"l2": {"choice": [0.0]}}}, rows=500)
    assert only_zero["search"]["initial_trials"][0]["l2"] == 0.0
    resolve_spec(only_zero, kind=JobKind.SEARCH, target="y", columns=COLUMNS)
    assert network["num_layers"] == 2 and (network["units0"], network["units1"]) == (64, 64)
    spec = resolve_spec(raw, kind=JobKind.SEARCH, target="y", columns=COLUMNS)
    assert spec.search is not None and spec.search.initial_trials == [linear, network]
    # The user's own values win: what they fixed leaves the starting points, which still resolve.
    mine = with_default_space(
        {"training": {"optimizer": "sgd"}, "model": {"layers": [{"units": 8}]}}, rows=500
    )
    for trial in mine["search"]["initial_trials"]:
        assert "optimizer" not in trial and "num_layers" not in trial and "units0" not in trial
    resolve_spec(mine, kind=JobKind.SEARCH, target="y", columns=COLUMNS)
    # Their own starting points, or an algorithm that picks its own trials, get none.
    given = with_default_space({"search": {"initial_trials": []}}, rows=500)
    assert given["search"]["initial_trials"] == []
    assert (
        "initial_trials" not in with_default_space({"search": {"algorithm": "hyperband"}}, rows=500)["search"]
    )
