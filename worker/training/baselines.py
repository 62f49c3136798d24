"""Classical baselines on the network's own split: a regularized linear model and gradient-boosted trees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from worker.training.data import Prepared
from worker.training.scores import score

MISSING = "__missing__"


def _features(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    # Categories as plain strings with missing spelled out: what one-hot encoding needs.
    out = frame.copy()
    for name in categorical:
        out[name] = out[name].astype(object).where(out[name].notna(), MISSING).astype(str)
    return out


def _pipeline(numeric: list[str], categorical: list[str], estimator: Any) -> Pipeline:
    columns = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return make_pipeline(columns, estimator)


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


def fit_baselines(data: Prepared, seed: int, *, balanced: bool = False) -> dict[str, dict[str, float]]:
    """Each baseline's validation (and test, when held out) scores, named as the network's are."""
    numeric = [c["name"] for c in data.features if c["dtype"] == "numeric"]
    categorical = [c["name"] for c in data.features if c["dtype"] != "numeric"]
    x_train = _features(data.x_train, categorical)
    # Encoded once, scored by each baseline.
    splits = {
        prefix: (_features(x, categorical), y)
        for prefix, (x, y) in {"val_": (data.x_val, data.y_val), "test_": (data.x_test, data.y_test)}.items()
        if len(y)
    }
    found: dict[str, dict[str, float]] = {}
    for name, estimator in _estimators(data.task, seed, balanced).items():
        model = _pipeline(numeric, categorical, estimator).fit(x_train, data.y_train)
        scores: dict[str, float] = {}
        for prefix, (x, y) in splits.items():
            outputs = model.predict(x) if data.task == "regression" else model.predict_proba(x)
            scores |= score(data.task, y, np.asarray(outputs), n_classes=len(data.classes), prefix=prefix)
        found[name] = scores
    return found
