"""Honest evaluation: the test split is held out before anything trains, baselines are fitted on the same
rows, and a network that loses to one is flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.spec import JobSpec
from models.tabular import parse_csv
from tests.training.conftest import train
from worker.training.baselines import fit_baselines
from worker.training.data import prepare
from worker.training.evaluation import _flags, evaluate_job
from worker.training.scores import score


def _table(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    table = parse_csv(frame.to_csv(index=False).encode())
    return table.frame, table.columns


def _cancer() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns={"target": "label"})
    return frame.assign(row_id=np.arange(len(frame)))  # a feature that names each row


def test_test_rows_never_reach_training_or_validation() -> None:
    frame, columns = _table(_cancer())
    spec = JobSpec.model_validate({"task": "binary", "evaluation": {"test_fraction": 0.25}})
    data = prepare(frame, columns, target="label", spec=spec)
    seen = set(data.x_train["row_id"]) | set(data.x_val["row_id"])
    held = set(data.x_test["row_id"])
    assert not seen & held
    assert len(seen) + len(held) == len(frame) and len(held) == -(-len(frame) // 4)  # ceil, as sklearn
    # Stratified: the test split keeps the classes' proportions.
    assert abs(data.y_test.mean() - frame["label"].mean()) < 0.02
    # Deterministic: the same seed holds out the same rows in every job and trial.
    again = prepare(frame, columns, target="label", spec=spec)
    assert set(again.x_test["row_id"]) == held
    # As scikit-learn would split with that seed.
    _, expected = train_test_split(
        np.arange(len(frame)), test_size=0.25, random_state=spec.split.seed, stratify=frame["label"]
    )
    assert held == set(expected)


def test_folds_split_as_scikit_learns_cross_val_score_does() -> None:
    """5 folds of the rows left after the test split: the same rows per fold, so the same scores."""
    frame, columns = _table(_cancer())
    raw = {"task": "binary", "evaluation": {"test_fraction": 0.2, "folds": 5}}
    features = [c for c in frame.columns if c not in ("label", "row_id")]
    ours, validated = [], []
    for fold in range(5):
        raw["evaluation"]["fold"] = fold  # type: ignore[index]
        data = prepare(frame, columns, target="label", spec=JobSpec.model_validate(raw))
        assert not set(data.x_val["row_id"]) & set(data.x_test["row_id"])
        validated.append(set(data.x_val["row_id"]))
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(data.x_train[features], data.y_train)
        ours.append(model.score(data.x_val[features], data.y_val))
    test_rows = set(data.x_test["row_id"])
    assert set().union(*validated) == set(range(len(frame))) - test_rows  # every other row validates once
    assert sum(len(v) for v in validated) == len(frame) - len(test_rows)
    rest, _ = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=1, stratify=frame["label"])
    expected = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        frame.iloc[rest][features],
        frame.iloc[rest]["label"],
        cv=StratifiedKFold(5, shuffle=True, random_state=1),
    )
    np.testing.assert_allclose(ours, expected)


def test_a_refit_trains_on_the_validation_rows_but_never_on_the_test_rows() -> None:
    frame, columns = _table(_cancer())
    spec = JobSpec.model_validate({"task": "binary", "evaluation": {"test_fraction": 0.2, "refit": True}})
    plain = prepare(frame, columns, target="label", spec=spec)
    refit = prepare(frame, columns, target="label", spec=spec, refit=True)
    assert set(refit.x_train["row_id"]) == set(plain.x_train["row_id"]) | set(plain.x_val["row_id"])
    assert not set(refit.x_train["row_id"]) & set(refit.x_test["row_id"])
    assert list(refit.y_train) == [*plain.y_train, *plain.y_val]


def test_a_fold_outside_the_folds_and_options_that_contradict_are_refused() -> None:
    with pytest.raises(ValidationError, match="fold 3 is not one of the 3 folds"):
        JobSpec.model_validate({"evaluation": {"folds": 3, "fold": 3}})
    with pytest.raises(ValidationError, match="cannot be combined with an ensemble"):
        JobSpec.model_validate({"evaluation": {"refit": True, "test_fraction": 0.2, "ensemble": 3}})
    with pytest.raises(ValidationError, match="refit_seeds shapes the refit: it needs refit true"):
        JobSpec.model_validate({"evaluation": {"refit_seeds": 3}})
    with pytest.raises(ValidationError, match="refit_trials shapes the refit: it needs refit true"):
        JobSpec.model_validate({"evaluation": {"refit_trials": 3}})
    with pytest.raises(ValidationError, match="one_se_rule chooses among the best trials' models"):
        JobSpec.model_validate({"evaluation": {"refit": True, "one_se_rule": True}})
    with pytest.raises(ValidationError, match="refit_seeds x refit_trials is 30 networks; at most 20"):
        JobSpec.model_validate({"evaluation": {"refit": True, "refit_trials": 3, "refit_seeds": 10}})


def test_no_test_fraction_keeps_every_row_for_training_and_validation() -> None:
    frame, columns = _table(_cancer())
    data = prepare(frame, columns, target="label", spec=JobSpec.model_validate({"task": "binary"}))
    assert len(data.y_test) == 0 and len(data.y_train) + len(data.y_val) == len(frame)


def test_baselines_score_the_same_split_with_the_same_metrics() -> None:
    frame, columns = _table(_cancer().drop(columns="row_id"))
    spec = JobSpec.model_validate({"task": "binary", "evaluation": {"test_fraction": 0.2}})
    data = prepare(frame, columns, target="label", spec=spec)
    baselines = fit_baselines(data, seed=1)
    assert set(baselines) == {"linear", "boosted_trees"}
    for scores in baselines.values():
        assert {"val_accuracy", "val_auc", "val_loss", "test_accuracy", "test_auc"} <= set(scores)
        assert scores["val_accuracy"] > 0.9 and scores["test_accuracy"] > 0.9


def test_regression_and_categorical_baselines() -> None:
    rng = np.random.default_rng(0)
    n = 300
    colour = rng.choice(["red", "green", None], size=n)
    x = rng.normal(size=n)
    y = 3 * x + np.where(colour == "red", 2.0, 0.0) + rng.normal(scale=0.1, size=n)
    frame, columns = _table(pd.DataFrame({"x": x, "colour": colour, "y": y}))
    spec = JobSpec.model_validate({"task": "regression"})
    data = prepare(frame, columns, target="y", spec=spec)
    linear = fit_baselines(data, seed=1)["linear"]
    assert linear["val_r2"] > 0.95 and linear["val_rmse"] < 0.5  # the one-hot colour was used


def test_a_network_that_loses_to_a_baseline_is_flagged() -> None:
    baselines = {"linear": {"test_accuracy": 0.97}, "boosted_trees": {"test_accuracy": 0.95}}
    [flag] = _flags("binary", {"test_accuracy": 0.9}, baselines, on="test_")
    assert flag["flag"] == "baseline_beats_network" and flag["baseline"] == "linear"
    assert abs(flag["margin"] - 0.07) < 1e-9
    assert _flags("binary", {"test_accuracy": 0.98}, baselines, on="test_") == []
    # Lower is better for regression's rmse.
    [flag] = _flags("regression", {"val_rmse": 2.0}, {"linear": {"val_rmse": 1.5}}, on="val_")
    assert flag["margin"] == 0.5


def test_scores_match_scikit_learn_on_probabilities() -> None:
    y = np.array([0, 1, 1, 0])
    found = score("binary", y, np.array([[0.2], [0.8], [0.4], [0.1]]), n_classes=2, prefix="test_")
    assert found["test_accuracy"] == 0.75 and found["test_auc"] == 1.0


def test_a_refit_without_test_rows_is_compared_by_its_trials_validation_scores(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """Its own validation scores would flatter it (it trained on those rows): none are reported, and
    the baselines meet the chosen trial's validation score from before the refit."""
    result, _ = train(data["breast_cancer"], "target", {"training": {"epochs": 2}}, tmp_path)
    spec = JobSpec.model_validate({"task": "binary"})
    found = evaluate_job(
        csv_path=data["breast_cancer"],
        has_header=True,
        target="target",
        spec=spec,
        model_path=tmp_path / "model.keras",
        input_schema=result.input_schema,
        trained_on_validation=True,
        selection={"val_accuracy": 0.5, "val_loss": 0.9, "epochs_run": 2},
    )
    assert "val" not in found and "test" not in found and found["test_rows"] == 0
    [flag] = found["flags"]
    assert flag["metric"] == "val_accuracy" and flag["margin"] > 0.4


def test_baselines_fit_on_at_most_baseline_rows_drawn_by_class() -> None:
    """A large training split is subsampled for the baselines, stratified, and the count is reported."""
    frame, columns = _table(_cancer().drop(columns="row_id"))
    spec = JobSpec.model_validate({"task": "binary", "evaluation": {"baseline_rows": 150}})
    data = prepare(frame, columns, target="label", spec=spec)
    capped = fit_baselines(data, seed=1, most_rows=spec.evaluation.baseline_rows)
    whole = fit_baselines(data, seed=1, most_rows=None)
    [rows] = {scores["train_rows"] for scores in capped.values()}
    assert abs(rows - 150) <= 2  # each class's share rounded
    assert {scores["train_rows"] for scores in whole.values()} == {len(data.y_train)}
    assert capped["boosted_trees"]["val_accuracy"] > 0.85  # still a real model, on the full val rows
    assert capped["linear"]["val_loss"] != whole["linear"]["val_loss"]
    # Drawn by class: the sample keeps the training split's class balance.
    from worker.training.baselines import _subsample

    _, y = _subsample(data, 150, seed=1)
    assert abs(y.mean() - data.y_train.mean()) < 0.01


def test_a_subsample_keeps_every_class_and_the_baselines_score_all_of_them() -> None:
    """A class with one training row stays in (its probability column too): scoring cannot fail."""
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    label = np.where(x > 0, "up", "down").astype(object)
    label[:3] = "rare"  # one row of it lands in training, the rest in validation
    frame, columns = _table(pd.DataFrame({"x": x, "label": label}))
    spec = JobSpec.model_validate(
        {"task": "multiclass", "split": {"stratify": False}, "evaluation": {"baseline_rows": 100}}
    )
    data = prepare(frame, columns, target="label", spec=spec)
    from worker.training.baselines import _subsample

    _, y = _subsample(data, 100, seed=1)
    assert set(np.unique(y)) == set(np.unique(data.y_train))
    scores = fit_baselines(data, seed=1, most_rows=100)
    assert scores["linear"]["val_accuracy"] > 0.9 and np.isfinite(scores["linear"]["val_loss"])
    with pytest.raises(ValidationError, match="baseline_rows"):
        JobSpec.model_validate({"evaluation": {"baseline_rows": 10}})


def test_baselines_are_fitted_once_per_data_and_split(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset's next job on the same split reports the baselines kept from the first (the same
    scores, no refit); another split, test fraction, class weighting or file fits its own."""
    from worker.training import evaluation

    fits: list[int] = []

    def counted(*args: object, **kwargs: object) -> dict[str, dict[str, float]]:
        fits.append(1)
        return fit_baselines(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluation, "fit_baselines", counted)
    result, _ = train(data["breast_cancer"], "target", {"training": {"epochs": 1}}, tmp_path)

    def baselines(spec: dict[str, object], csv: Path = data["breast_cancer"]) -> dict[str, dict[str, float]]:
        found = evaluate_job(
            csv_path=csv,
            has_header=True,
            target="target",
            spec=JobSpec.model_validate({"task": "binary", **spec}),
            model_path=tmp_path / "model.keras",
            input_schema=result.input_schema,
        )
        return found["baselines"]  # type: ignore[no-any-return]

    first = baselines({"split": {"seed": 11}})
    first["linear"]["val_accuracy"] = -1.0  # a caller's change never reaches the kept copy
    again = baselines({"split": {"seed": 11}})
    assert len(fits) == 1 and again["linear"]["val_accuracy"] > 0.9
    for other in (
        {"split": {"seed": 12}},
        {"split": {"seed": 11}, "evaluation": {"test_fraction": 0.2}},
        {"split": {"seed": 11}, "training": {"class_weight": "balanced"}},
    ):
        baselines(other)
    assert len(fits) == 4
    assert baselines({"split": {"seed": 12}})["linear"] != again["linear"] and len(fits) == 4
    # Another file, and then that file replaced at the same path (a new size and time), fit anew.
    copy = tmp_path / "copy.csv"
    copy.write_bytes(data["breast_cancer"].read_bytes())
    baselines({"split": {"seed": 11}}, copy)
    assert len(fits) == 5
    copy.write_bytes(b"".join(data["breast_cancer"].read_bytes().splitlines(keepends=True)[:-60]))
    baselines({"split": {"seed": 11}}, copy)
    assert len(fits) == 6
