"""Load a stored dataset, pick features, encode the target and split rows reproducibly."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from models.spec import JobSpec
from models.tabular import parse_csv
from worker.training.reporting import TrainingFailed


@dataclass
class Prepared:
    """Feature frames split into training and validation, with encoded targets."""

    task: str
    features: list[dict[str, Any]]
    x_train: pd.DataFrame
    x_val: pd.DataFrame
    y_train: np.ndarray
    y_val: np.ndarray
    classes: list[Any]
    # Rows held out by spec.evaluation.test_fraction (empty when 0): never given to a trainer.
    x_test: pd.DataFrame
    y_test: np.ndarray


# A job parses its dataset to train, again for its closing evaluation, and a search once per
# population: each worker process keeps the last file it parsed (one, up to this size, until it parses
# another). Stored files never change; size and mtime in the key still catch a replaced file.
KEEP_PARSED_BYTES = 256 * 1024 * 1024
_parsed: tuple[tuple[str, int, int, bool], pd.DataFrame, list[dict[str, Any]]] | None = None


def forget_parsed() -> None:
    """Drop the kept frame (benchmarks measure a job's first parse of its file)."""
    global _parsed
    _parsed = None


def load_frame(path: Path, *, has_header: bool) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Parse a stored CSV exactly as the upload did (the frame is shared: derive from it, never write)."""
    global _parsed
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, has_header)
    kept = _parsed  # read once: a worker may run tasks in threads (--pool threads)
    if kept is not None and kept[0] == key:
        return kept[1], copy.deepcopy(kept[2])
    _parsed = None  # the old frame goes before the new one is parsed, not after
    table = parse_csv(path.read_bytes(), header="true" if has_header else "false")
    if table.frame.memory_usage(deep=True).sum() <= KEEP_PARSED_BYTES:
        _parsed = (key, table.frame, copy.deepcopy(table.columns))
    return table.frame, table.columns


def load_prepared(
    csv_path: Path, *, has_header: bool, target: str, spec: JobSpec, refit: bool = False
) -> Prepared:
    """A stored dataset parsed and split as ``spec`` says (see ``prepare``)."""
    frame, columns = load_frame(csv_path, has_header=has_header)
    return prepare(frame, columns, target=target, spec=spec, refit=refit)


def _encode_target(values: pd.Series, task: str) -> tuple[np.ndarray, list[Any]]:
    if task == "regression":
        return values.astype("float32").to_numpy(), []
    classes = sorted(values.unique().tolist(), key=lambda v: (isinstance(v, str), v))
    index = {value: i for i, value in enumerate(classes)}
    codes = values.map(index).astype("int64").to_numpy()
    # Integral floats read back from CSV become ints so labels look like the user's data.
    return codes, [int(c) if isinstance(c, float) and c.is_integer() else c for c in classes]


def prepare(
    frame: pd.DataFrame, columns: list[dict[str, Any]], *, target: str, spec: JobSpec, refit: bool = False
) -> Prepared:
    """Drop rows without a target, keep numeric and categorical features, split train/val.

    ``refit``: the validation rows are trained on too (a search's final refit, for a fixed number of
    epochs); they stay as the validation split only to report on. The test rows stay out.
    """
    frame = frame[frame[target].notna()].reset_index(drop=True)
    # Free text is never a feature; categories only when one-hot encoding is on.
    usable = {"numeric", "categorical"} if spec.preprocessing.categorical == "one_hot" else {"numeric"}
    features = [c for c in columns if c["name"] != target and c["dtype"] in usable]
    if not features:
        raise TrainingFailed("no_features", "no numeric or categorical feature column to learn from")
    y, classes = _encode_target(frame[target], spec.task)
    x = frame[[c["name"] for c in features]]
    x_test, y_test = x.iloc[:0], y[:0]
    if spec.evaluation.test_fraction > 0:
        # First, and from every row: the test rows are out before validation is even drawn.
        x, x_test, y, y_test = train_test_split(
            x,
            y,
            test_size=spec.evaluation.test_fraction,
            random_state=spec.split.seed,
            stratify=_stratify(y, spec),
        )
        if len(y_test) < 1:
            raise TrainingFailed("too_few_rows", f"{len(frame)} rows cannot spare a test split")
    if spec.evaluation.folds > 1:
        train_rows, val_rows = fold_indices(y, spec)[spec.evaluation.fold]
        x_train, x_val, y_train, y_val = x.iloc[train_rows], x.iloc[val_rows], y[train_rows], y[val_rows]
    else:
        x_train, x_val, y_train, y_val = train_test_split(
            x,
            y,
            test_size=spec.split.validation_fraction,
            random_state=spec.split.seed,
            stratify=_stratify(y, spec),
        )
    if len(x_train) < 2 or len(x_val) < 1:
        raise TrainingFailed("too_few_rows", f"{len(frame)} rows cannot be split for validation")
    if refit:
        x_train, y_train = pd.concat([x_train, x_val]), np.concatenate([y_train, y_val])
    return Prepared(
        spec.task,
        features,
        x_train.reset_index(drop=True),
        x_val.reset_index(drop=True),
        y_train,
        y_val,
        classes,
        x_test.reset_index(drop=True),
        y_test,
    )


def class_weights(data: Prepared, spec: JobSpec) -> np.ndarray | None:
    """Per-class loss weights for ``training.class_weight`` (None: every row weighs 1)."""
    if spec.training.class_weight == "none" or spec.task == "regression":
        return None
    counts = np.bincount(data.y_train, minlength=len(data.classes)).astype("float64")
    # A class absent from the training rows has no row to weigh.
    return np.where(counts > 0, len(data.y_train) / (len(data.classes) * np.maximum(counts, 1)), 0.0)


def fold_indices(y: np.ndarray, spec: JobSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training, validation) row positions of each fold, as scikit-learn's splitters draw them."""
    k, seed = spec.evaluation.folds, spec.split.seed
    if len(y) < 2 * k:
        raise TrainingFailed("too_few_rows", f"{len(y)} rows cannot be cut into {k} folds")
    stratified = _stratify(y, spec) is not None and np.bincount(y).min() >= k
    splitter = (
        StratifiedKFold(k, shuffle=True, random_state=seed)
        if stratified
        else KFold(k, shuffle=True, random_state=seed)
    )
    return list(splitter.split(np.zeros((len(y), 1)), y))


def _stratify(y: np.ndarray, spec: JobSpec) -> np.ndarray | None:
    """Stratify on the classes when asked and every class has at least two rows."""
    if spec.task == "regression" or not spec.split.stratify:
        return None
    return y if np.bincount(y).min() >= 2 else None
