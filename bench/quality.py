"""Model quality, judged as a data scientist would: 25% of each dataset held out from the service.

For each dataset (scikit-learn's breast cancer, iris, wine, digits, diabetes; generated data: categorical
columns and string labels, a non-linear regression, 60 columns with three imbalanced 1-based classes,
a small headerless file) the rest is uploaded; the default train job (``{}``) and the
default search (``{"search": {"max_trials": N}}``) run through a real cluster; the chosen models are
downloaded and score the held-out rows; a logistic/ridge regression and gradient-boosted trees are
trained on the same uploaded rows beside them. Prints dataset -> baselines -> default train -> default
search (validation and test) -> time. Accuracy for classification, R^2 for regression.

    .venv/bin/python bench/quality.py [--trials 10] [--only NAME ...] [--ensemble K] [--refit yes|no]
        [--folds K] [--seed S]  (a new held-out split, validation split, initialization and search per seed)
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cluster import cluster
from sklearn import datasets
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sklearn(loader: Callable[..., Any], labels: list[str] | None = None) -> pd.DataFrame:
    bunch = loader(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "label"})
    if labels is not None:  # string class names, as users' files hold them
        frame["label"] = [labels[int(i)] for i in frame["label"]]
    return frame


def _generated_categorical(seed: int = 0, rows: int = 1200) -> pd.DataFrame:
    """Binary, string labels, two categorical columns that matter, missing cells, some noise columns."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["north", "south", "east", "west"], rows)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    age = rng.normal(40, 12, rows)
    usage = rng.gamma(2.0, 3.0, rows)
    logit = 0.08 * (age - 40) - 0.3 * usage + 1.5 * (plan == "pro") + 0.8 * (city == "north") + 1.0
    churn = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({"age": age, "usage": usage, "city": city, "plan": plan})
    for i in range(4):
        frame[f"noise{i}"] = rng.normal(size=rows)
    frame.loc[rng.random(rows) < 0.05, "age"] = np.nan
    frame["label"] = np.where(churn, "yes", "no")
    return frame


def _generated_regression(seed: int = 1, rows: int = 1500) -> pd.DataFrame:
    """A non-linear regression with a categorical column (1-based codes)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (rows, 5))
    group = rng.integers(1, 4, rows)
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + 0.5 * x[:, 2] * x[:, 3] + 0.7 * group + rng.normal(0, 0.2, rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)]).assign(group=[f"g{g}" for g in group])
    return frame.assign(label=y)


def _generated_wide_multiclass(seed: int = 2, rows: int = 900) -> pd.DataFrame:
    """Three imbalanced classes labelled 1, 2, 3 (1-based), 60 columns of which 8 carry signal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 60))
    scores = np.stack([x[:, :4].sum(1), x[:, 2:6] @ [1, -1, 1, 0.5], np.tanh(x[:, 6]) * 2 + x[:, 7]], axis=1)
    scores += np.log([0.6, 0.25, 0.15]) + rng.gumbel(size=(rows, 3))
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(60)]).assign(label=scores.argmax(1) + 1)


def _generated_headerless(seed: int = 3, rows: int = 220) -> pd.DataFrame:
    """A small headerless binary file (uploaded without a header row): 4 columns, an interaction."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    logit = 1.5 * x[:, 0] - x[:, 1] + 1.2 * x[:, 2] * x[:, 3]
    return pd.DataFrame(x, columns=[f"v{i}" for i in range(4)]).assign(
        label=(rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    )


HEADERLESS = {"headerless_binary"}

DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "breast_cancer": lambda: _sklearn(datasets.load_breast_cancer, ["malignant", "benign"]),
    "iris": lambda: _sklearn(datasets.load_iris, ["setosa", "versicolor", "virginica"]),
    "wine": lambda: _sklearn(datasets.load_wine),
    "digits": lambda: _sklearn(datasets.load_digits),
    "diabetes": lambda: _sklearn(datasets.load_diabetes),
    "churn_categorical": _generated_categorical,
    "nonlinear_regression": _generated_regression,
    "wide_multiclass_1based": _generated_wide_multiclass,
    "headerless_binary": _generated_headerless,
}


def _as_uploaded(frame: pd.DataFrame, headerless: bool) -> tuple[pd.DataFrame, str]:
    """The frame with the names the service will give its columns, and the target's name."""
    if not headerless:
        return frame, "label"
    # Without a header row the service names columns col_0, col_1, ... (label last here).
    renamed = frame.set_axis([f"col_{i}" for i in range(frame.shape[1])], axis=1)
    return renamed, renamed.columns[-1]


def _baselines(train: pd.DataFrame, test: pd.DataFrame, regression: bool) -> dict[str, float]:
    """Test scores of the two baselines trained on the uploaded rows (the service's own pipelines)."""
    from models.spec import JobSpec
    from models.tabular import parse_csv
    from worker.training.baselines import fit_baselines
    from worker.training.data import Prepared

    both = pd.concat([train, test], ignore_index=True)
    table = parse_csv(both.to_csv(index=False).encode())
    spec = JobSpec.model_validate({"task": "regression" if regression else "multiclass"})
    features = [c for c in table.columns if c["name"] != "label"]
    frame = table.frame
    x = frame[[c["name"] for c in features]]
    y_raw = frame["label"]
    if regression:
        y, classes = y_raw.to_numpy("float64"), []
    else:
        classes = sorted(y_raw.unique().tolist(), key=str)
        y = y_raw.map({c: i for i, c in enumerate(classes)}).to_numpy()
    n = len(train)
    data = Prepared(spec.task, features, x.iloc[:n], x.iloc[:0], y[:n], y[:0], classes, x.iloc[n:], y[n:])
    metric = "test_r2" if regression else "test_accuracy"
    fitted = fit_baselines(data, seed=1, most_rows=spec.evaluation.baseline_rows)
    return {name: scores[metric] for name, scores in fitted.items()}


def _test_score(client: Any, model_id: str, test: pd.DataFrame, regression: bool, headerless: bool) -> float:
    """The downloaded model on the held-out rows (raw rows in, as a user predicts)."""
    import keras
    from sklearn.metrics import accuracy_score, r2_score

    from worker.training.predictions import predict_rows

    card = client.get(f"/v1/models/{model_id}").json()
    with tempfile.NamedTemporaryFile(suffix=".keras") as handle:
        handle.write(client.get(f"/v1/models/{model_id}/download").content)
        handle.flush()
        model = keras.saving.load_model(handle.name, safe_mode=True)
    features = _as_uploaded(test, headerless)[0].iloc[:, :-1] if headerless else test.drop(columns="label")
    rows = features.astype(object).where(features.notna(), None)
    found = predict_rows(model, card["input_schema"], rows.to_dict("records"))
    if regression:
        return float(r2_score(test["label"], [p["value"] for p in found]))
    return float(accuracy_score(test["label"].astype(str), [str(p["label"]) for p in found]))


def _run(
    client: Any, dataset_id: str, target: str, kind: str, spec: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    job = client.post(
        "/v1/jobs", json={"kind": kind, "dataset_id": dataset_id, "target": target, "spec": spec}
    ).json()
    assert "id" in job, job
    while (job := client.get(f"/v1/jobs/{job['id']}").json())["status"] not in {"succeeded", "failed"}:
        time.sleep(0.5)
    assert job["status"] == "succeeded", job.get("error")
    return job, time.monotonic() - started


def _evaluation(args: argparse.Namespace) -> dict[str, Any]:
    """The search's spec.evaluation from the command line: only what was given, else the defaults."""
    chosen = {
        "ensemble": args.ensemble,
        "refit": None if args.refit is None else args.refit == "yes",
        "folds": args.folds,
    }
    given = {key: value for key, value in chosen.items() if value is not None}
    return {"evaluation": given} if given else {}


def main() -> None:
    """Every dataset through one cluster; one table row each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--only", nargs="*", default=list(DATASETS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--seed", type=int, default=0, help="held-out split's seed; the jobs' seeds are S + 1"
    )
    parser.add_argument("--ensemble", type=int, default=None, help="spec.evaluation.ensemble of the search")
    parser.add_argument("--folds", type=int, default=None, help="spec.evaluation.folds of the search")
    parser.add_argument(
        "--refit",
        choices=["yes", "no"],
        default=None,
        help="spec.evaluation.refit of the search (the default search refits unless told no)",
    )
    args = parser.parse_args()
    rows = []
    with cluster(workers=args.workers) as client:
        for name in args.only:
            frame = DATASETS[name]()
            regression = name in {"diabetes", "nonlinear_regression"}
            train, test = train_test_split(
                frame,
                test_size=0.25,
                random_state=args.seed,
                stratify=None if regression else frame["label"],
            )
            headerless = name in HEADERLESS
            uploaded, target = _as_uploaded(train, headerless)
            buffer = io.BytesIO()
            uploaded.to_csv(buffer, index=False, header=not headerless)
            dataset = client.post(
                "/v1/datasets", files={"file": (f"{name}.csv", buffer.getvalue(), "text/csv")}
            ).json()
            baselines = _baselines(train, test, regression)
            seeds = (
                {}
                if args.seed == 0
                else {"split": {"seed": args.seed + 1}, "training": {"seed": args.seed + 1}}
            )
            trained, train_s = _run(client, dataset["id"], target, "train", seeds)
            searched, search_s = _run(
                client,
                dataset["id"],
                target,
                "search",
                {"search": {"max_trials": args.trials, "max_concurrent_trials": args.workers}}
                | seeds
                | _evaluation(args),
            )
            metric = "val_r2" if regression else "val_accuracy"
            rows.append(
                {
                    "dataset": name,
                    "rows": len(frame),
                    "linear": baselines["linear"],
                    "trees": baselines["boosted_trees"],
                    "train val": trained["best"]["metrics"].get(metric, float("nan")),
                    "train test": _test_score(
                        client, trained["best"]["model_id"], test, regression, headerless
                    ),
                    "search val": searched["best"]["metrics"].get(metric, float("nan")),
                    "search test": _test_score(
                        client, searched["best"]["model_id"], test, regression, headerless
                    ),
                    "train s": train_s,
                    "search s": search_s,
                }
            )
            print(rows[-1], flush=True)
    print("\nHeld-out test rows (25%, never uploaded); accuracy, or R^2 for regression")
    header = ["dataset", "rows", "linear", "trees", "train val", "train test", "search val", "search test"]
    print(" | ".join(f"{h:>12}" for h in header) + " | train s | search s | search vs best baseline")
    wins = 0
    for row in rows:
        best = max(row["linear"], row["trees"])
        gap = row["search test"] - best
        wins += gap >= 0
        cells = [f"{row['dataset']:>12}", f"{row['rows']:>12}"] + [f"{row[h]:12.3f}" for h in header[2:]]
        print(" | ".join(cells) + f" | {row['train s']:7.1f} | {row['search s']:8.1f} | {gap:+.3f}")
    print(f"default search reaches the best baseline on {wins} of {len(rows)}")


if __name__ == "__main__":
    main()
