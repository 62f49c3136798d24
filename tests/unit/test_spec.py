"""Unit tests for models.spec: defaults, strict validation and resolution against a dataset."""

from __future__ import annotations

from typing import Any

import pytest

from models.errors import InvalidInput
from models.spec import JobSpec, detect_task, parse_spec, resolve_spec
from models.status import JobKind
from models.tabular import parse_csv


def columns_of(header: str, rows: list[str]) -> list[dict[str, Any]]:
    """Column profiles of a small CSV, built the way the service builds them."""
    return parse_csv(("\n".join([header, *rows]) + "\n").encode()).columns


def resolve(raw: dict[str, Any], target: str, cols: list[dict[str, Any]]) -> JobSpec:
    """resolve_spec for a train job."""
    return resolve_spec(raw, kind=JobKind.TRAIN, target=target, columns=cols)


def invalid(raw: dict[str, Any]) -> InvalidInput:
    """The InvalidInput parse_spec raises for ``raw``."""
    with pytest.raises(InvalidInput) as caught:
        parse_spec(raw)
    return caught.value


BINARY = columns_of("x,y", [f"{i},{i % 2}" for i in range(10)])
MULTI_LABELS = columns_of("x,label", [f"{i},{['a', 'b', 'c'][i % 3]}" for i in range(12)])
CONTINUOUS = columns_of("x,y", [f"{i},{i * 1.37:.2f}" for i in range(30)])


# --- defaults --------------------------------------------------------------------------------


def test_empty_spec_resolves_to_the_documented_defaults() -> None:
    """{} means the API.md defaults: 2x10 relu, adam 1e-3, 100 epochs, batch 32, early stopping."""
    spec = resolve({}, "y", BINARY).model_dump()
    assert spec["model"] == {
        "layers": [
            {"units": 10, "activation": "relu", "dropout": 0.0},
            {"units": 10, "activation": "relu", "dropout": 0.0},
        ],
        "initializer": "auto",
        "batch_norm": False,
        "l1": 0.0,
        "l2": 0.0,
    }
    assert spec["training"] == {
        "optimizer": "adam",
        "learning_rate": 0.001,
        "clipnorm": None,
        "clipvalue": None,
        "epochs": 100,
        "batch_size": 32,
        "seed": 1,
        "engine": "auto",
        "early_stopping": {
            "monitor": "val_loss",
            "patience": 10,
            "min_delta": 0.0,
            "restore_best_weights": True,
        },
        "class_weight": "none",
    }
    assert spec["preprocessing"] == {
        "normalization": "standard",
        "impute": "mean",
        "missing_values": {},
        "categorical": "one_hot",
    }
    assert spec["split"] == {"validation_fraction": 0.2, "seed": 1, "stratify": True}
    assert spec["search"] is None


def test_resolved_task_replaces_auto() -> None:
    """The stored spec never says task 'auto': the detected task is filled in."""
    assert parse_spec({}).task == "auto"
    assert resolve({}, "y", BINARY).task == "binary"


def test_defaults_are_not_shared_between_specs() -> None:
    """Changing one spec's default layer list leaves the next spec's defaults intact."""
    first = parse_spec({})
    first.model.layers.append(first.model.layers[0])
    assert len(parse_spec({}).model.layers) == 2


def test_missing_values_given_as_empty_list_is_accepted() -> None:
    """API.md shows missing_values: [] as the default, so [] must be accepted."""
    assert parse_spec({"preprocessing": {"missing_values": []}}).preprocessing.missing_values == {}


def test_early_stopping_null_disables_it() -> None:
    """training.early_stopping: null turns early stopping off."""
    assert parse_spec({"training": {"early_stopping": None}}).training.early_stopping is None


def test_partial_override_keeps_other_defaults() -> None:
    """Overriding one nested field leaves its siblings at their defaults."""
    spec = parse_spec({"training": {"early_stopping": {"patience": 3}}, "model": {"l2": 0.01}})
    assert spec.training.early_stopping is not None
    assert spec.training.early_stopping.patience == 3
    assert spec.training.early_stopping.monitor == "val_loss"
    assert spec.training.epochs == 100
    assert spec.model.l2 == 0.01
    assert len(spec.model.layers) == 2


# --- strict validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ({"epoch": 5}, ("spec", "epoch")),
        ({"training": {"lr": 0.1}}, ("spec", "training", "lr")),
        ({"training": {"early_stopping": {"mode": "min"}}}, ("spec", "training", "early_stopping", "mode")),
        (
            {"model": {"layers": [{"units": 5}, {"units": 5, "kernel": "x"}]}},
            ("spec", "model", "layers", 1, "kernel"),
        ),
        ({"split": {"shuffle": True}}, ("spec", "split", "shuffle")),
        ({"preprocessing": {"scaler": "standard"}}, ("spec", "preprocessing", "scaler")),
        ({"search": {"trials": 3}}, ("spec", "search", "trials")),
    ],
)
def test_unknown_fields_are_rejected_at_any_depth(raw: dict[str, Any], loc: tuple) -> None:
    """A misspelt field is an invalid_spec error located at that field, never silently ignored."""
    error = invalid(raw)
    assert error.code == "invalid_spec"
    assert [field.loc for field in error.errors] == [loc]
    assert loc[-1] in error.detail


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"model": {"layers": [{"dropout": 1.5}]}}, "dropout"),
        ({"model": {"layers": [{"units": 0}]}}, "units"),
        ({"training": {"optimizer": "adamw"}}, "optimizer"),
        ({"training": {"clipnorm": 0}}, "clipnorm"),
        ({"training": {"clipnorm": -1}}, "clipnorm"),
        ({"training": {"learning_rate": 0}}, "learning_rate"),
        ({"split": {"validation_fraction": 1.0}}, "validation_fraction"),
        ({"split": {"validation_fraction": 0}}, "validation_fraction"),
        ({"training": {"epochs": 0}}, "epochs"),
        ({"training": {"batch_size": 0}}, "batch_size"),
        ({"model": {"layers": [{"activation": "relu6"}]}}, "activation"),
        ({"task": "ranking"}, "task"),
    ],
)
def test_out_of_range_values_are_rejected_naming_the_field(raw: dict[str, Any], field: str) -> None:
    """Each out-of-range or unknown-choice value is invalid_spec and the detail names the field."""
    error = invalid(raw)
    assert error.code == "invalid_spec"
    assert field in error.detail
    assert error.errors[0].loc[0] == "spec"
    assert error.errors[0].loc[-1] == field


def test_boundary_values_inside_the_range_are_accepted() -> None:
    """The largest allowed dropout and the smallest allowed units are fine."""
    spec = parse_spec({"model": {"layers": [{"units": 1, "dropout": 0.99}]}, "training": {"clipnorm": 0.5}})
    assert spec.model.layers[0].units == 1
    assert spec.training.clipnorm == 0.5


# --- resolve_spec ----------------------------------------------------------------------------


def test_unknown_target_is_reported_with_the_available_columns() -> None:
    """A target that is not a column is unknown_target, and the detail lists real columns."""
    with pytest.raises(InvalidInput) as caught:
        resolve({}, "Outcome", BINARY)
    assert caught.value.code == "unknown_target"
    assert "Outcome" in caught.value.detail
    assert "x, y" in caught.value.detail


def test_single_class_target_is_rejected() -> None:
    """A target with one distinct value cannot be learned from."""
    cols = columns_of("x,y", [f"{i},1" for i in range(10)])
    with pytest.raises(InvalidInput) as caught:
        resolve({}, "y", cols)
    assert caught.value.code == "target_single_class"
    assert "'y'" in caught.value.detail


def test_single_class_categorical_target_is_rejected_even_with_explicit_task() -> None:
    """task=binary with a one-label target is still target_single_class."""
    cols = columns_of("x,y", [f"{i},yes" for i in range(10)])
    with pytest.raises(InvalidInput) as caught:
        resolve({"task": "binary"}, "y", cols)
    assert caught.value.code == "target_single_class"


def test_regression_on_categorical_target_is_rejected() -> None:
    """Regression needs a numeric target."""
    with pytest.raises(InvalidInput) as caught:
        resolve({"task": "regression"}, "label", MULTI_LABELS)
    assert caught.value.code == "target_not_numeric"
    assert "regression" in caught.value.detail


def test_class_weights_on_a_regression_target_are_rejected() -> None:
    """Balanced class weights need classes: a 422 naming the field, not a silent no-op."""
    with pytest.raises(InvalidInput) as caught:
        resolve({"training": {"class_weight": "balanced"}}, "y", CONTINUOUS)
    assert caught.value.code == "invalid_spec"
    assert [e.loc for e in caught.value.errors] == [("spec", "training", "class_weight")]
    assert (
        resolve({"training": {"class_weight": "balanced"}}, "y", BINARY).training.class_weight == "balanced"
    )


def test_binary_task_on_three_classes_is_rejected() -> None:
    """Forcing binary on a 3-class target is target_not_binary."""
    with pytest.raises(InvalidInput) as caught:
        resolve({"task": "binary"}, "label", MULTI_LABELS)
    assert caught.value.code == "target_not_binary"


def integer_target(distinct: int) -> list[dict[str, Any]]:
    """Profiles of a CSV whose integer target 'y' takes ``distinct`` values."""
    return columns_of("x,y", [f"{i},{i % distinct}" for i in range(2 * distinct)])


@pytest.mark.parametrize(
    ("target", "cols", "task"),
    [
        ("y", BINARY, "binary"),
        ("label", columns_of("x,label", [f"{i},{'yes' if i % 2 else 'no'}" for i in range(8)]), "binary"),
        ("label", MULTI_LABELS, "multiclass"),
        ("y", integer_target(3), "multiclass"),
        ("y", integer_target(20), "multiclass"),
        ("y", integer_target(21), "regression"),
        ("y", CONTINUOUS, "regression"),
        ("y", columns_of("x,y", [f"{i},{i % 3 + 0.5}" for i in range(9)]), "regression"),
    ],
)
def test_task_auto_detection(target: str, cols: list[dict[str, Any]], task: str) -> None:
    """2 values -> binary; labels or <= 20 integers -> multiclass; otherwise regression."""
    assert resolve({}, target, cols).task == task


def test_detect_task_matches_resolve_for_headerless_file() -> None:
    """Headerless files are resolved against their col_N names."""
    cols = parse_csv(b"1,0\n2,1\n3,0\n4,1\n").columns
    assert detect_task(cols[1]) == "binary"
    assert resolve({}, "col_1", cols).task == "binary"


def test_explicit_task_overrides_detection() -> None:
    """task=regression on an integer target with few values is honoured."""
    assert resolve({"task": "regression"}, "y", integer_target(5)).task == "regression"


@pytest.mark.parametrize(
    ("monitor", "cols", "target"),
    [
        ("val_auc", CONTINUOUS, "y"),
        ("val_accuracy", CONTINUOUS, "y"),
        ("val_rmse", BINARY, "y"),
        ("val_auc", MULTI_LABELS, "label"),
        ("val_los", BINARY, "y"),
    ],
)
def test_early_stopping_monitor_not_produced_by_task_is_rejected(
    monitor: str, cols: list[dict[str, Any]], target: str
) -> None:
    """Monitoring a metric the task never computes is invalid_spec at submit time."""
    with pytest.raises(InvalidInput) as caught:
        resolve({"training": {"early_stopping": {"monitor": monitor}}}, target, cols)
    assert caught.value.code == "invalid_spec"
    assert monitor in caught.value.detail
    assert caught.value.errors[0].loc == ("spec", "training", "early_stopping", "monitor")


@pytest.mark.parametrize(
    ("monitor", "cols", "target"),
    [
        ("val_rmse", CONTINUOUS, "y"),
        ("val_mae", CONTINUOUS, "y"),
        ("val_auc", BINARY, "y"),
        ("val_accuracy", MULTI_LABELS, "label"),
        ("loss", CONTINUOUS, "y"),
    ],
)
def test_early_stopping_monitor_produced_by_task_is_accepted(
    monitor: str, cols: list[dict[str, Any]], target: str
) -> None:
    """Monitoring a metric the task does compute resolves fine."""
    spec = resolve({"training": {"early_stopping": {"monitor": monitor}}}, target, cols)
    assert spec.training.early_stopping is not None
    assert spec.training.early_stopping.monitor == monitor


def test_missing_values_naming_unknown_column_is_rejected() -> None:
    """missing_values keyed by a column the dataset lacks is invalid_spec naming that column."""
    raw = {"preprocessing": {"missing_values": {"Glucose": [0], "x": [0]}}}
    with pytest.raises(InvalidInput) as caught:
        resolve(raw, "y", BINARY)
    assert caught.value.code == "invalid_spec"
    assert "Glucose" in caught.value.detail
    assert [e.loc for e in caught.value.errors] == [("spec", "preprocessing", "missing_values", "Glucose")]


def test_missing_values_naming_known_column_is_kept() -> None:
    """missing_values keyed by a real column survives resolution."""
    spec = resolve({"preprocessing": {"missing_values": {"x": [0, "?"]}}}, "y", BINARY)
    assert spec.preprocessing.missing_values == {"x": [0, "?"]}


def test_search_only_evaluation_options_on_a_train_job_are_refused() -> None:
    """Ensemble, folds and refit act after a search's trials: on a train job each is a 422 naming it."""
    for option in ({"ensemble": 3}, {"folds": 3}, {"refit": True}):
        with pytest.raises(InvalidInput) as caught:
            resolve({"evaluation": option}, "y", BINARY)
        [name] = option
        assert [e.loc for e in caught.value.errors] == [("spec", "evaluation", name)]
