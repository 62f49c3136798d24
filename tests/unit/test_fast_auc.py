"""The fast engine's streaming AUC: Keras' rule (200 thresholds, a row counts above a threshold when its
prediction is greater), accumulated batch by batch as a histogram."""

from __future__ import annotations

import jax.numpy as jnp
import keras
import numpy as np
import pytest

from worker.training.fast import network
from worker.training.fast.network import Shape

SHAPE = Shape("binary", 3, 1, 1, 4, ("relu",), False)


def _streamed_auc(predicted: np.ndarray, y: np.ndarray, w: np.ndarray, batch: int = 32) -> float:
    totals = network.empty_totals(SHAPE)
    for i in range(0, len(y), batch):
        rows = slice(i, i + batch)
        totals = network.add_totals(
            SHAPE,
            totals,
            jnp.float32(0.0),
            jnp.asarray(predicted[rows]),
            jnp.asarray(y[rows]),
            jnp.asarray(w[rows]),
        )
    return float(network.read_totals(SHAPE, totals)[2])


def _keras_rule(predicted: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Every row against every threshold, as keras.metrics.AUC counts them."""
    thresholds = np.asarray(network._thresholds())
    above = predicted[:, None] > thresholds[None, :]
    tp, fp = ((w * y) @ above), ((w * (1 - y)) @ above)
    fn, tn = np.sum(w * y) - tp, np.sum(w * (1 - y)) - fp
    recall, fpr = tp / np.maximum(tp + fn, 1e-30), fp / np.maximum(fp + tn, 1e-30)
    return float(np.sum((fpr[:-1] - fpr[1:]) * (recall[:-1] + recall[1:]) / 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_streamed_auc_counts_rows_above_each_threshold_as_keras_does(seed: int) -> None:
    """Predictions on the thresholds themselves, at 0 and 1, and weighted rows: the same AUC."""
    rng = np.random.default_rng(seed)
    predicted = rng.random(500).astype(np.float32)
    predicted[:40] = np.asarray(network._thresholds())[rng.integers(0, 200, 40)]  # exact ties
    predicted[40:44] = [0.0, 1.0, 1e-9, 1 - 1e-7]
    y = (rng.random(500) < predicted).astype(np.float32)
    w = rng.choice([0.5, 1.0, 3.0], 500).astype(np.float32)
    assert _streamed_auc(predicted, y, w) == pytest.approx(_keras_rule(predicted, y, w), abs=1e-6)


def test_the_streamed_auc_matches_keras_metric_on_ordinary_predictions() -> None:
    rng = np.random.default_rng(7)
    predicted = rng.random(300).astype(np.float32)
    y = (rng.random(300) < predicted).astype(np.float32)
    metric = keras.metrics.AUC(num_thresholds=200)
    metric.update_state(y, predicted)
    assert _streamed_auc(predicted, y, np.ones(300, np.float32)) == pytest.approx(
        float(metric.result()), abs=1e-6
    )


def test_the_counts_at_every_threshold_are_the_rows_above_it() -> None:
    """Each threshold's weighted counts, not only the AUC (which barely moves when they shift by one)."""
    rng = np.random.default_rng(3)
    predicted = rng.random(200).astype(np.float32)
    predicted[:3] = [np.nan, 1.5, -0.5]
    y = (rng.random(200) < 0.5).astype(np.float32)
    w = rng.choice([0.5, 2.0], 200).astype(np.float32)
    totals = network.add_totals(
        SHAPE,
        network.empty_totals(SHAPE),
        jnp.float32(0.0),
        jnp.asarray(predicted),
        jnp.asarray(y),
        jnp.asarray(w),
    )
    above = predicted[:, None] > np.asarray(network._thresholds())[None, :]
    expected = ((w * y) @ above, (w * (1 - y)) @ above, (w * y) @ ~above, (w * (1 - y)) @ ~above)
    for counted, wanted in zip(network.confusion(totals), expected, strict=True):
        np.testing.assert_allclose(np.asarray(counted), wanted, atol=1e-4)


def test_a_nan_prediction_counts_below_every_threshold() -> None:
    """A diverged member's NaN outputs are above no threshold (NaN > t is false), as Keras counts them."""
    predicted = np.array([np.nan, 0.9, 0.2, 0.7], np.float32)
    y = np.array([1.0, 1.0, 0.0, 0.0], np.float32)
    w = np.ones(4, np.float32)
    assert _streamed_auc(predicted, y, w) == pytest.approx(_keras_rule(predicted, y, w), abs=1e-6)
