"""An ensemble of trials: one saved model, raw rows in, the mean of its members' outputs out."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from models.tabular import parse_csv
from tests.training.conftest import train
from worker.training.ensemble import (
    build_ensemble,
    select_members,
    select_with_replacement,
    simplest_within_one_se,
)
from worker.training.inputs import frame_to_inputs, to_tensors
from worker.training.scores import row_losses, score


def test_the_ensemble_averages_its_members_on_raw_rows(data: dict[str, Path], tmp_path: Path) -> None:
    """Three differently seeded models of a dataset with categories and blanks, joined as one file."""
    paths = []
    for seed in (1, 2, 3):
        folder = tmp_path / f"member{seed}"
        folder.mkdir()
        result, _ = train(data["mixed"], "label", {"training": {"epochs": 5, "seed": seed}}, folder)
        paths.append(folder / "model.keras")
    sha = build_ensemble(paths, tmp_path / "ensemble.keras")
    assert len(sha) == 64
    ensemble = keras.saving.load_model(tmp_path / "ensemble.keras", safe_mode=True)
    rows = parse_csv(data["mixed"].read_bytes()).frame.head(40)  # strings, blanks and NaNs as uploaded
    inputs = to_tensors(frame_to_inputs(rows, result.input_schema["inputs"]))
    members = [keras.saving.load_model(p, safe_mode=True).predict(inputs, verbose=0) for p in paths]
    averaged = ensemble.predict(inputs, verbose=0)
    np.testing.assert_allclose(averaged, np.mean(members, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(members[0], members[1]), "the members differ, so the mean is not one of them"
    # One member alone (the one-standard-error rule may choose a trial that is not the best): its outputs.
    build_ensemble(paths[1:2], tmp_path / "alone.keras")
    alone = keras.saving.load_model(tmp_path / "alone.keras", safe_mode=True)
    np.testing.assert_allclose(alone.predict(inputs, verbose=0), members[1], rtol=1e-5, atol=1e-6)


def test_selection_adds_a_member_only_while_the_average_improves() -> None:
    """A complementary trial joins the best one; a poor trial is left out rather than averaged in."""
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    best = np.array([0.3, 0.9, 0.2, 0.4, 0.1, 0.8, 0.6, 0.7])  # wrong-ish on rows 3 and 6
    complementary = np.array([0.2, 0.6, 0.4, 0.9, 0.3, 0.7, 0.2, 0.6])  # right where best is weak
    poor = 1.0 - y * 0.9 - 0.05  # confidently wrong everywhere
    chosen = select_members([best, poor, complementary], y, task="binary", most=3)
    assert chosen == [0, 2]
    assert select_members([best, poor], y, task="binary", most=3) == [0]
    values = np.array([1.0, 2.0, 3.0])
    over, under = values + 0.5, values - 0.5  # each off by a constant; their mean is exact
    assert select_members([over, under], values, task="regression", most=2) == [0, 1]


def test_selection_with_replacement_always_fills_its_rounds_and_weighs_by_repeats() -> None:
    """The refit's picks: a poor trial never joins; where none helps the best is picked again (another
    seed of it); over-/under-shooting regressors are weighed so that their mean is right."""
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    best = np.array([0.3, 0.9, 0.2, 0.4, 0.1, 0.8, 0.6, 0.7])
    complementary = np.array([0.2, 0.6, 0.4, 0.9, 0.3, 0.7, 0.2, 0.6])
    poor = 1.0 - y * 0.9 - 0.05
    picks = select_with_replacement([best, poor, complementary], y, task="binary", rounds=5)
    assert len(picks) == 5 and picks[0] == 0 and 2 in picks and 1 not in picks
    assert select_with_replacement([best, poor], y, task="binary", rounds=3) == [0, 0, 0]
    values = np.array([1.0, 2.0, 3.0])
    over, far_under = values + 0.5, values - 1.0  # two of over and one of far_under average exactly
    picks = select_with_replacement([over, far_under], values, task="regression", rounds=3)
    assert sorted(picks) == [0, 0, 1]


def test_the_one_se_rule_prefers_the_simplest_trial_the_best_does_not_clearly_beat() -> None:
    """A big network a hair better on noisy validation rows yields to the linear model beside it, which
    then takes every pick; a network clearly better (by many standard errors) stays the first pick."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    truth = np.where(y == 1, 0.8, 0.2)
    linear = np.clip(truth + rng.normal(0, 0.15, 200), 0.01, 0.99)
    # Nudged toward the right label on 106 rows and away on 94: better on these rows, by luck.
    toward = np.where(np.arange(200) < 106, 0.01, -0.01) * np.where(y == 1, 1, -1)
    lucky = np.clip(linear + toward, 0.01, 0.99)
    assert row_losses("binary", y, lucky).mean() < row_losses("binary", y, linear).mean()
    sizes = [4_000, 31]  # the lucky network first: the best on validation
    losses = [row_losses("binary", y, o) for o in (lucky, linear)]
    assert simplest_within_one_se(losses, sizes) == 1
    assert select_with_replacement([lucky, linear], y, task="binary", rounds=5) == [0, 0, 0, 0, 0]
    assert select_with_replacement([lucky, linear], y, task="binary", rounds=5, sizes=sizes) == [1] * 5
    assert select_members([lucky, linear], y, task="binary", most=2, sizes=sizes) == [1]

    sharp = np.where(y == 1, 0.97, 0.03)  # right on every row, confidently
    losses = [row_losses("binary", y, o) for o in (sharp, linear)]
    assert simplest_within_one_se(losses, sizes) == 0
    assert select_with_replacement([sharp, linear], y, task="binary", rounds=3, sizes=sizes)[0] == 0


def test_under_the_one_se_rule_a_clearly_helpful_trial_still_joins() -> None:
    """Two regressors off by opposite constants: their mean is exact, far past one standard error."""
    values = np.linspace(0.0, 10.0, 50)
    over, under = values + 1.0, values - 1.0
    picks = select_with_replacement([over, under], values, task="regression", rounds=4, sizes=[10, 10])
    assert sorted(picks) == [0, 0, 1, 1]
    assert select_members([over, under], values, task="regression", most=2, sizes=[10, 10]) == [0, 1]


def test_row_losses_average_to_the_reported_loss() -> None:
    """The rule's per-row losses are the metric's: their mean is val_loss (and val_rmse squared)."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 40)
    probabilities = rng.dirichlet(np.ones(3), 40)
    expected = score("multiclass", y, probabilities, n_classes=3, prefix="")["loss"]
    assert row_losses("multiclass", y, probabilities).mean() == pytest.approx(expected)
    binary = rng.integers(0, 2, 40)
    sigmoid = rng.random((40, 1))
    expected = score("binary", binary, sigmoid, n_classes=2, prefix="")["loss"]
    assert row_losses("binary", binary, sigmoid).mean() == pytest.approx(expected)
    values, found = rng.normal(size=40), rng.normal(size=(40, 1))
    rmse = score("regression", values, found, n_classes=0, prefix="")["rmse"]
    assert np.sqrt(row_losses("regression", values, found).mean()) == pytest.approx(rmse)


def test_a_refit_of_two_configurations_from_two_seeds_saves_four_networks_averaged(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """Two configurations from two seeds each: four networks on training + validation rows, one model."""
    from models.spec import EvaluationSpec, resolve_spec
    from models.status import JobKind
    from worker.refit import _seeded, _train_all

    csv = data["breast_cancer"]
    table = parse_csv(csv.read_bytes())
    # Two trials' configurations as the refit gets them (trial_spec: concrete values, no early stopping),
    # each from two seeds.
    refit = EvaluationSpec(refit=True, refit_seeds=2, refit_trials=2)
    networks = [
        _seeded(
            resolve_spec(
                {"model": {"layers": [{"units": units}]}, "training": {"epochs": 3, "early_stopping": None}},
                kind=JobKind.TRAIN,
                target="target",
                columns=table.columns,
            ).model_copy(update={"evaluation": refit}),
            seed,
        )
        for units in (4, 12)
        for seed in (1, 2)
    ]
    path = tmp_path / "refit.keras"
    result = _train_all(csv, table.has_header, "target", networks, path)
    assert result.metrics["train_rows"] == len(table.frame)  # no validation rows held back
    saved = keras.saving.load_model(path, safe_mode=True)
    members = [layer for layer in saved.layers if isinstance(layer, keras.Model)]
    widths = sorted(next(w for w in m.weights if "kernel" in w.path).shape[1] for m in members)
    assert widths == [4, 4, 12, 12]
    kernels = [next(w for w in m.weights if "kernel" in w.path).numpy() for m in members]
    assert all(not np.array_equal(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1 :])
    inputs = to_tensors(frame_to_inputs(table.frame.head(5), result.input_schema["inputs"]))
    outputs = saved.predict(inputs, verbose=0)
    assert outputs.shape == (5, 1) and np.all((outputs >= 0) & (outputs <= 1))


def test_cross_validated_trials_are_judged_out_of_fold_on_every_row(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """With a model per fold, each fold's validation rows are run through that fold's model: every row
    left after the test split is judged once, by a model that never trained on it. A trial as good as
    another on fold 0 but untrained on the others is told apart only this way."""
    from models.spec import EvaluationSpec, resolve_spec
    from models.status import JobKind
    from tests.training.conftest import Collector
    from worker.training.data import load_prepared
    from worker.training.evaluation import choose_members, out_of_fold_outputs, weight_count
    from worker.training.train import run_training

    csv = data["breast_cancer"]
    table = parse_csv(csv.read_bytes())
    base = resolve_spec(
        {"training": {"epochs": 15}}, kind=JobKind.TRAIN, target="target", columns=table.columns
    )
    base = base.model_copy(update={"evaluation": EvaluationSpec(test_fraction=0.2, folds=3)})
    schema: dict[str, object] = {}

    def fold_model(fold: int, learning_rate: float, name: str) -> Path:
        training = base.training.model_copy(update={"learning_rate": learning_rate})
        evaluation = base.evaluation.model_copy(update={"fold": fold})
        spec = base.model_copy(update={"training": training, "evaluation": evaluation})
        path = tmp_path / f"{name}{fold}.keras"
        result = run_training(
            csv_path=csv, has_header=True, target="target", spec=spec, reporter=Collector(), model_path=path
        )
        schema.update(result.input_schema)
        return path

    good = [fold_model(fold, 0.01, "good") for fold in range(3)]
    untrained_elsewhere = [good[0], fold_model(1, 1e-7, "untrained"), fold_model(2, 1e-7, "untrained")]
    sources = {"csv_path": csv, "has_header": True, "target": "target", "input_schema": schema}
    outputs, y, n_classes = out_of_fold_outputs(spec=base, candidates=[good, untrained_elsewhere], **sources)

    folds = [
        load_prepared(
            csv,
            has_header=True,
            target="target",
            spec=base.model_copy(update={"evaluation": base.evaluation.model_copy(update={"fold": f})}),
        )
        for f in range(3)
    ]
    rest = len(table.frame) - len(folds[0].y_test)
    assert len(y) == rest and all(o.shape[0] == rest for o in outputs)  # every non-test row, once
    np.testing.assert_array_equal(y, np.concatenate([f.y_val for f in folds]))
    first = len(folds[0].y_val)
    np.testing.assert_allclose(outputs[0][:first], outputs[1][:first])  # fold 0: the same model
    losses = [score("binary", y, o, n_classes=n_classes, prefix="")["loss"] for o in outputs]
    assert losses[0] < 0.3 < 0.6 < losses[1], losses
    picks = choose_members(
        spec=base, candidates=[good, untrained_elsewhere], most=3, replacement=True, **sources
    )
    assert picks == [0, 0, 0]
    # The one-standard-error rule sizes each candidate by its trainable weights (the guide's 10-10-1
    # on 30 columns; the normalization's statistics are not trained): a tie in size, so the clearly
    # better model is the first pick, and none is worth adding to it.
    assert weight_count(good[0]) == (30 * 10 + 10) + (10 * 10 + 10) + (10 + 1)
    ruled = base.model_copy(
        update={"evaluation": EvaluationSpec(test_fraction=0.2, folds=3, ensemble=2, one_se_rule=True)}
    )
    assert choose_members(spec=ruled, candidates=[untrained_elsewhere, good], most=2, **sources) == [1]
