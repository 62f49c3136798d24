"""Defaults sized to the data, not to one dataset: a search's space when its spec gives no
distribution, and a train job's epochs when its spec gives none."""

from __future__ import annotations

import copy
import math
from typing import Any

from models.search_space import extract_space


def searches_nothing(raw: dict[str, Any]) -> bool:
    """True when ``raw`` holds no distribution anywhere (``{}``, ``{"search": {}}``, fixed values only)."""
    return extract_space(raw).is_empty()


# Optimizer steps a trial may take before early stopping ends it: 100 epochs of a 100-row dataset are
# only a few hundred steps, and the network underfits.
MIN_STEPS = 3_000
MAX_EPOCHS = 1_000
REFIT_TRIALS = 5  # the default search's final model: the mean of this many refits, picked on validation


def epochs_for(rows: int, batch_size: int) -> int:
    """At least the guide's 100 epochs, and enough for ``MIN_STEPS`` steps on the training split."""
    steps_per_epoch = max(1, -(-int(rows * 0.8) // batch_size))
    return min(MAX_EPOCHS, max(100, -(-MIN_STEPS // steps_per_epoch)))


def with_default_training(raw: dict[str, Any], rows: int) -> dict[str, Any]:
    """A train spec without ``epochs``, given enough of them for its data (and patience to match).

    The guide's 100 epochs are 400 steps on 150 rows: the default network stopped still underfitting.
    A spec that turns early stopping off keeps 100 (more would only overfit).
    """
    training = raw.get("training") or {}
    if not isinstance(training, dict) or "epochs" in training or training.get("early_stopping", {}) is None:
        return raw
    batch = training.get("batch_size", 32)
    epochs = epochs_for(rows, batch if isinstance(batch, int) and batch > 0 else 32)
    if epochs == 100:
        return raw
    added: dict[str, Any] = {"epochs": epochs}
    stopping = training.get("early_stopping")
    if stopping is None or (isinstance(stopping, dict) and "patience" not in stopping):
        added["early_stopping"] = (stopping or {}) | {"patience": 20}
    return raw | {"training": training | added}


def default_space(rows: int) -> dict[str, Any]:
    """Depth, width, dropout, L2, batch norm, learning rate (log scale), batch size and optimizer.

    Small datasets get narrower layers, smaller batches and enough epochs to take ``MIN_STEPS`` steps
    (early stopping, with more patience, still ends a trial that stops improving); large ones wider
    layers and bigger batches (a batch of 32 over a million rows is hours of tiny steps). Trials are
    chosen by validation loss, which moves smoothly where a small validation split's accuracy jumps.
    """
    small, large = rows < 2_000, rows >= 50_000
    widest = 128 if small else 256
    # Two sizes: each batch size (and batch norm on/off) is its own compiled program on the fast engine.
    batches = [16, 32] if small else [128, 256] if large else [32, 128]
    epochs = epochs_for(rows, batches[0])
    return {
        "model": {
            "l2": {"choice": [0.0, 1e-5, 1e-4, 1e-3]},
            "batch_norm": {"choice": [False, True]},
        },
        "training": {
            "learning_rate": {"float": [1e-4, 3e-2], "log": True},
            "batch_size": {"choice": batches},
            "optimizer": {"choice": ["adam", "nadam", "rmsprop"]},
            "epochs": epochs,
            "early_stopping": {"patience": 10 if epochs == 100 else 20},
        },
        # As scikit-learn's GridSearchCV refits by default: the chosen configuration is retrained on
        # the training and validation rows (a quarter more data) for the epoch count it stopped at.
        # Five networks are refit and averaged, picked among the ten best trials by ensemble selection
        # on validation: one refit's score swings with its initial weights, the best trial is partly the
        # luck of a small validation split, and no rows are left to tell a lucky refit from an unlucky
        # one; a weak trial among the best few would drag the mean down.
        # Not cross-validated by default: 5 folds on small data (trials ranked by their mean, picks judged
        # out of fold) took 1.5-2x as long in bench/quality.py and scored no better on held-out rows
        # (mean gap to the best baseline over 3 splits: -0.0000 with folds, -0.0006 without).
        # Nor does it follow the one-standard-error rule (evaluation.one_se_rule): over 3 splits of the 9
        # sets of bench/quality.py it reached the best baseline on 17 of 27 against 20 without it, and
        # with 5 folds beside it on 19; 4, 6 and 4 of the 27 stayed more than 2 points behind. It turned a
        # loss into a win where the linear model was best (breast cancer) and a win into a loss where
        # the data has an interaction a linear model misses (headerless_binary).
        "evaluation": {"refit": True, "refit_trials": REFIT_TRIALS},
        "search": {
            "objective": "val_loss",
            # Depth 0 (no hidden layer) lets the search fall back to a linear model where the data is
            # linear: on small tabular sets a regularized linear model is often the one to beat.
            "num_layers": {"int": [0, 3]},
            "layer": {
                "units": {"int": [16, widest], "step": 16},
                "dropout": {"choice": [0.0, 0.1, 0.2, 0.3, 0.5]},
            },
        },
    }


def linear_l2(rows: int, choices: list[float]) -> float:
    """The L2 of ``choices`` nearest (log scale) to scikit-learn's default for a linear model on ``rows``
    rows: C=1 adds |w|^2 / 2 to the summed loss, that is |w|^2 / (2 n) to Keras' mean loss."""
    target = 1.0 / (2 * max(1, int(rows * 0.8)))  # the training split's rows
    return min((c for c in choices if c > 0), key=lambda c: abs(math.log(c / target)), default=0.0)


def starting_points(batch_size: int, linear_l2: float) -> list[dict[str, Any]]:
    """The default search's first trials: a well-set linear model, then a common two-layer network.

    Ten random trials leave to chance whether the search meets a linear model trained well enough to
    match the baseline one (on small tabular sets often the one to beat); these are tried first, as
    AutoML tools start from a portfolio of known-good configurations, then the oracle draws the rest.
    The linear model is regularized as scikit-learn's LogisticRegression is by default (``linear_l2``):
    the baseline it must match. Measured with it (bench/quality.py, 3 held-out splits x 9 sets): at or
    above the best baseline on 19 of 27 (6, 6, 7), 4 more than 2 points behind; with 1e-4, 20 (6, 6, 8)
    and 4: the same within a test row or two, so the choice rests on matching the baseline.
    """
    common = {"batch_norm": False, "optimizer": "adam", "batch_size": batch_size, "l2": 1e-4}
    return [
        common | {"num_layers": 0, "learning_rate": 1e-2, "l2": linear_l2},
        common
        | {"num_layers": 2, "learning_rate": 1e-3}
        | {f"{name}{i}": value for i in range(2) for name, value in (("units", 64), ("dropout", 0.1))},
    ]


def _fitting(trials: list[dict[str, Any]], merged: dict[str, Any]) -> list[dict[str, Any]]:
    """Each trial keeping only the values the merged space can take (the user's choices win)."""
    params = extract_space(merged).params_by_name()
    return [{k: v for k, v in trial.items() if k in params and params[k].allows(v)} for trial in trials]


def with_default_space(raw: dict[str, Any], rows: int) -> dict[str, Any]:
    """``raw`` with the default space added where it gives no value of its own (its values win)."""

    def merge(user: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(user)
        for key, value in default.items():
            if key not in out:
                out[key] = value
            elif isinstance(out[key], dict) and isinstance(value, dict):
                out[key] = merge(out[key], value)
        return out

    default = default_space(rows)
    evaluation = raw.get("evaluation") if isinstance(raw.get("evaluation"), dict) else {}
    if isinstance(evaluation, dict) and (
        evaluation.get("ensemble", 1) != 1 or evaluation.get("refit") is False
    ):
        # The user's ensemble is the final model (no refit beside it), or the user asked for no refit.
        del default["evaluation"]
    if "layers" in (raw.get("model") or {}):
        # The user fixed the network's layers: the default search leaves depth and width alone.
        default["search"] = {k: v for k, v in default["search"].items() if k not in ("num_layers", "layer")}
    merged = merge(raw, default)
    search = merged["search"]
    if (
        isinstance(search, dict)  # anything else is refused, naming the field, when the spec resolves
        and "initial_trials" not in search
        and search.get("algorithm", "random") in ("random", "bayesian")
    ):
        smallest_batch = default["training"]["batch_size"]["choice"][0]
        # From the user's own L2 choices where they give some (a value outside them would be dropped).
        l2_param = extract_space(merged).params_by_name().get("l2")
        choices = list(l2_param.values) if l2_param is not None and l2_param.kind == "choice" else []
        if not choices or not all(isinstance(c, int | float) for c in choices):
            choices = default["model"]["l2"]["choice"]
        l2 = linear_l2(rows, choices)
        search["initial_trials"] = [t for t in _fitting(starting_points(smallest_batch, l2), merged) if t]
    return merged
