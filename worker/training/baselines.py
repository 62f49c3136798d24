"""Classical baselines on the network's own split: a regularized linear model and gradient-boosted trees."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.spec import JobSpec
from worker.training.data import Prepared
from worker.training.scores import score

MISSING = "__missing__"
# Baselines depend on the data and its split only, never on the network: each worker process keeps the
# last few it fitted, so a dataset's next jobs on the same split (a user's next search or train job)
# report them without refitting (0.15 s of a 10-trial search's 3.5 s on Pima; seconds on large data).
_fitted: LRUCache[str, dict[str, dict[str, float]]] = LRUCache(maxsize=32)
_fitted_lock = threading.Lock()


def _features(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    # Categories as plain strings with missing spelled out: what one-hot encoding needs.
    out = frame.copy()
    for name in categorical:
        out[name] = out[name].astype(object).where(out[name].notna(), MISSING).astype(str)
    return out


def _columns(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )


def _estimators(task: str, seed: int, balanced: bool) -> dict[str, Any]:
    if task == "regression":
        return {
            "linear": RidgeCV(alphas=np.logspace(-3, 3, 13)),
            "boosted_trees": HistGradientBoostingRegressor(random_state=seed),
        }
    return {
        # Weighted as the network is, so the comparison stays like for like.
        "linear": LogisticRegression(max_iter=2000, class_weight="balanced" if balanced else None),
        "boosted_trees": HistGradientBoostingClassifier(
            random_state=seed, class_weight="balanced" if balanced else None
        ),
    }


def _subsample(data: Prepared, most: int | None, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The training rows, or about ``most`` of them drawn at random: by class when classifying, in
    proportion, and at least one row of every class (a class left out would leave its column out of
    the baselines' probabilities)."""
    if most is None or len(data.y_train) <= most:
        return data.x_train, data.y_train
    rng = np.random.default_rng(seed)
    if data.task == "regression":
        rows = rng.choice(len(data.y_train), most, replace=False)
    else:
        share = most / len(data.y_train)
        rows = np.concatenate(
            [
                rng.choice(members, max(1, round(len(members) * share)), replace=False)
                for members in (np.flatnonzero(data.y_train == c) for c in np.unique(data.y_train))
            ]
        )
    rows.sort()  # the training order, as the whole split has it
    return data.x_train.iloc[rows], data.y_train[rows]


def _probabilities(model: Any, x: Any, n_classes: int) -> np.ndarray:
    """Class probabilities with a column for every class, zero for one no training row had."""
    found = model.predict_proba(x)
    full = np.zeros((len(found), n_classes))
    full[:, model.classes_.astype(int)] = found
    return full


def fit_baselines(
    data: Prepared, seed: int, *, balanced: bool = False, most_rows: int | None = None
) -> dict[str, dict[str, float]]:
    """Each baseline's validation (and test, when held out) scores, named as the network's are, fitted
    on about ``most_rows`` training rows (see ``_subsample``)."""
    numeric = [c["name"] for c in data.features if c["dtype"] == "numeric"]
    categorical = [c["name"] for c in data.features if c["dtype"] != "numeric"]
    x_rows, y_train = _subsample(data, most_rows, seed)
    # Fitted and applied once for both baselines (the median imputer is most of a large fit's time).
    columns = _columns(numeric, categorical)
    x_train = columns.fit_transform(_features(x_rows, categorical))
    splits = {
        prefix: (columns.transform(_features(x, categorical)), y)
        for prefix, (x, y) in {"val_": (data.x_val, data.y_val), "test_": (data.x_test, data.y_test)}.items()
        if len(y)
    }
    found: dict[str, dict[str, float]] = {}
    for name, estimator in _estimators(data.task, seed, balanced).items():
        model = estimator.fit(x_train, y_train)
        scores: dict[str, float] = {}
        for prefix, (x, y) in splits.items():
            outputs = (
                model.predict(x) if data.task == "regression" else _probabilities(model, x, len(data.classes))
            )
            scores |= score(data.task, y, np.asarray(outputs), n_classes=len(data.classes), prefix=prefix)
        found[name] = scores | {"train_rows": len(y_train)}
    return found


def baseline_key(csv_path: Path, *, has_header: bool, target: str, spec: JobSpec) -> str:
    """Everything the baselines' scores depend on: the stored file and what of the spec splits and
    encodes it (``data.prepare``), weighs its classes and subsamples it (``fit_baselines``)."""
    stat = csv_path.stat()
    return json.dumps(
        [
            str(csv_path.resolve()),
            stat.st_size,
            stat.st_mtime_ns,  # stored files never change; size and mtime still catch a replaced one
            has_header,
            target,
            spec.task,
            spec.preprocessing.model_dump(mode="json"),
            spec.split.model_dump(mode="json"),
            spec.evaluation.model_dump(
                mode="json", include={"test_fraction", "folds", "fold", "baseline_rows"}
            ),
            spec.training.class_weight,
        ],
        sort_keys=True,
    )


def forget_baselines() -> None:
    """Drop every kept result (tests that count fits or compare a first fit's scores)."""
    with _fitted_lock:
        _fitted.clear()


def fitted_baselines(key: str, fit: Callable[[], dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """``fit()``'s result, or the one kept for ``key`` (a copy: callers may add to it)."""
    with _fitted_lock:
        kept = _fitted.get(key)
    if kept is None:
        kept = fit()
        with _fitted_lock:
            _fitted[key] = kept
    return copy.deepcopy(kept)
