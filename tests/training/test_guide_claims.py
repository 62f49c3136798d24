"""The guide's claims about training neural networks, checked with real Keras training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import train
from worker.training.reporting import TrainingFailed

DEEP = 8


def test_default_spec_reaches_the_guide_figures_on_three_tasks(data: dict[str, Path], tmp_path: Path) -> None:
    """Defaults: breast cancer >= 0.95, iris >= 0.90; diabetes regression reports RMSE and a mean R^2
    over three seeds >= 0.36."""
    cancer, _ = train(data["breast_cancer"], "target", {}, tmp_path)
    assert cancer.task == "binary" and cancer.metrics["val_accuracy"] >= 0.95
    assert {"val_auc", "val_loss"} <= set(cancer.metrics)
    iris, _ = train(data["iris"], "target", {}, tmp_path)
    assert iris.task == "multiclass" and iris.metrics["val_accuracy"] >= 0.90
    # The guide's 10-10 network is tuned for classification; on 353 rows a smaller, regularized one
    # fits better (linear regression reaches R^2 0.44 on this split).
    # One run's R^2 swings with its seed (dropout, initialization): 0.36-0.44 for model.fit over seeds
    # 0-5, and the same spread on the fast engine, so the claim is on the mean of three.
    r2 = []
    for seed in (0, 1, 2):
        regression = {
            "model": {"layers": [{"units": 16, "dropout": 0.2}]},
            "training": {"learning_rate": 0.003, "seed": seed},
        }
        diabetes, _ = train(data["diabetes"], "target", regression, tmp_path)
        assert diabetes.task == "regression"
        assert diabetes.metrics["val_rmse"] > 0 and diabetes.metrics["val_mae"] > 0
        r2.append(diabetes.metrics["val_r2"])
    assert np.mean(r2) >= 0.36, r2


def test_standard_normalization_beats_none_on_features_of_different_scales(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """With feature scales 1e-3..1e5, standardizing inside the model wins, and 'none' is flagged."""
    spec = {"training": {"epochs": 40, "early_stopping": None}}
    scaled, _ = train(data["scales"], "label", spec, tmp_path)
    raw, _ = train(data["scales"], "label", spec | {"preprocessing": {"normalization": "none"}}, tmp_path)
    assert scaled.metrics["val_accuracy"] >= raw.metrics["val_accuracy"] + 0.10
    assert scaled.metrics["val_accuracy"] >= 0.9
    assert "unscaled_input" in [f["flag"] for f in raw.diagnostics["flags"]]
    assert "unscaled_input" not in [f["flag"] for f in scaled.diagnostics["flags"]]


def test_deep_sigmoid_with_random_normal_vanishes_and_relu_he_does_not(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """A deep sigmoid net with random_normal init is flagged for vanishing gradients; ReLU + He is not."""
    epochs = {"training": {"epochs": 5, "early_stopping": None}}
    sigmoid, collected = train(
        data["breast_cancer"],
        "target",
        {"model": {"layers": [{"units": 16, "activation": "sigmoid"}] * DEEP, "initializer": "random_normal"}}
        | epochs,
        tmp_path,
    )
    relu, _ = train(
        data["breast_cancer"], "target", {"model": {"layers": [{"units": 16}] * DEEP}} | epochs, tmp_path
    )
    flags = {f["flag"]: f for f in sigmoid.diagnostics["flags"]}
    assert "vanishing_gradients" in flags and flags["vanishing_gradients"]["remedy"]
    assert "vanishing_gradients" not in [f["flag"] for f in relu.diagnostics["flags"]]
    first_epoch_norms = collected.epochs[0][2]
    assert list(first_epoch_norms) == [f"dense_{i}" for i in range(DEEP)] + ["output"]
    assert first_epoch_norms["dense_0"] < 1e-3 * first_epoch_norms["output"]


def test_zeros_init_learns_no_better_than_the_majority_class(data: dict[str, Path], tmp_path: Path) -> None:
    """All-zero weights keep every unit identical: accuracy stays at the majority-class rate."""
    result, _ = train(
        data["breast_cancer"],
        "target",
        {"model": {"initializer": "zeros"}, "training": {"epochs": 30, "early_stopping": None}},
        tmp_path,
    )
    target = pd.read_csv(data["breast_cancer"])["target"]
    majority = target.value_counts(normalize=True).max()
    assert result.metrics["val_accuracy"] <= majority + 0.01


def test_clipnorm_bounds_every_recorded_gradient_norm(data: dict[str, Path], tmp_path: Path) -> None:
    """With clipnorm 0.05 no recorded per-layer gradient norm exceeds 0.05; without, some do."""
    spec = {"preprocessing": {"normalization": "none"}, "training": {"epochs": 5, "early_stopping": None}}
    _, collected = train(
        data["breast_cancer"], "target", spec | {"training": spec["training"] | {"clipnorm": 0.05}}, tmp_path
    )
    _, unclipped = train(data["breast_cancer"], "target", spec, tmp_path)
    clipped_norms = [n for _, _, norms in collected.epochs for n in norms.values()]
    assert clipped_norms and max(clipped_norms) <= 0.05 * (1 + 1e-5)
    assert max(n for _, _, norms in unclipped.epochs for n in norms.values()) > 0.05


def test_same_spec_and_seed_give_the_same_metrics(data: dict[str, Path], tmp_path: Path) -> None:
    """Reproducible on CPU: one spec and seed, two runs, identical per-epoch metrics."""
    spec = {"model": {"layers": [{"units": 8, "dropout": 0.2}]}, "training": {"epochs": 8, "seed": 42}}
    _, first = train(data["iris"], "target", spec, tmp_path)
    _, second = train(data["iris"], "target", spec, tmp_path)
    assert [values for _, values, _ in first.epochs] == [values for _, values, _ in second.epochs]


def test_nan_loss_fails_with_diagnostics(data: dict[str, Path], tmp_path: Path) -> None:
    """A learning rate that blows the loss up raises a clear error carrying the diagnostics."""
    with pytest.raises(TrainingFailed) as failure:
        train(
            data["diabetes"],
            "target",
            {
                "preprocessing": {"normalization": "none"},
                "training": {"optimizer": "sgd", "learning_rate": 5.0, "epochs": 20, "early_stopping": None},
            },
            tmp_path,
        )
    assert failure.value.code == "training_diverged"
    assert "NaN" in str(failure.value)
    flags = [f["flag"] for f in failure.value.details["diagnostics"]["flags"]]
    assert "exploding_gradients" in flags


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd", "nadam", "adadelta", "adagrad"])
def test_every_optimizer_trains(data: dict[str, Path], tmp_path: Path, optimizer: str) -> None:
    """Each optimizer named in the spec trains iris: finite losses that go down over three epochs."""
    _, collected = train(
        data["iris"], "target", {"training": {"optimizer": optimizer, "epochs": 3}}, tmp_path
    )
    losses = [values["loss"] for _, values, _ in collected.epochs]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
