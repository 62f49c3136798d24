"""A job's closing evaluation: its chosen model on the held-out test rows, and baselines beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import structlog

from models.spec import JobSpec
from worker.training.baselines import baseline_key, fit_baselines, fitted_baselines
from worker.training.data import load_frame, load_prepared, prepare
from worker.training.ensemble import select_members, select_with_replacement
from worker.training.inputs import frame_to_inputs, to_tensors
from worker.training.predictions import raw_outputs
from worker.training.scores import PRIMARY, score

log = structlog.get_logger(__name__)


def closing_evaluation(**kwargs: Any) -> dict[str, Any]:
    """``evaluate_job``, where a failure is noted in the result, never fatal: the model is kept."""
    try:
        return evaluate_job(**kwargs)
    except Exception as exc:
        log.warning("evaluation_failed", error=f"{type(exc).__name__}: {exc}")
        return {"evaluation_error": f"{type(exc).__name__}: {exc}"}


def outputs_of(model: Any, rows: Any, input_schema: dict[str, Any]) -> np.ndarray:
    """The model's outputs on raw rows (a frame), as float64."""
    inputs = to_tensors(frame_to_inputs(rows, input_schema["inputs"]))
    return raw_outputs(model, inputs)


def out_of_fold_outputs(
    *,
    csv_path: Path,
    has_header: bool,
    target: str,
    spec: JobSpec,
    candidates: list[list[Path]],
    input_schema: dict[str, Any],
) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Each candidate's outputs on the validation rows, the labels and the class count.

    A candidate is its model file per fold. With one, it is run on the validation rows; with one per
    fold (a cross-validated search), on every fold's validation rows, each by the model that did not
    train on them: out-of-fold outputs of all the rows, where one fold's are a fifth of them.
    """
    folds = len(candidates[0])
    outputs: list[list[np.ndarray]] = [[] for _ in candidates]
    truth: list[np.ndarray] = []
    n_classes = 0
    frame, columns = load_frame(csv_path, has_header=has_header)  # parsed once, split once per fold
    for fold in range(folds):
        evaluation = spec.evaluation.model_copy(update={"fold": fold})
        fold_spec = spec if folds == 1 else spec.model_copy(update={"evaluation": evaluation})
        data = prepare(frame, columns, target=target, spec=fold_spec)
        truth.append(data.y_val)
        n_classes = len(data.classes)
        for found, paths in zip(outputs, candidates, strict=True):
            model = keras.saving.load_model(paths[fold], safe_mode=True, compile=False)
            found.append(outputs_of(model, data.x_val, input_schema))
    return [np.concatenate(found) for found in outputs], np.concatenate(truth), n_classes


def choose_members(
    *,
    csv_path: Path,
    has_header: bool,
    target: str,
    spec: JobSpec,
    candidates: list[list[Path]],
    input_schema: dict[str, Any],
    most: int,
    replacement: bool = False,
) -> list[int]:
    """Which candidates (best first, as ``out_of_fold_outputs`` takes them) to average, judged on their
    validation (or out-of-fold) outputs: up to ``most`` distinct ones, or with ``replacement`` exactly
    ``most`` picks, repeats counting twice; by the one-standard-error rule where the spec asks for it."""
    outputs, y, _ = out_of_fold_outputs(
        csv_path=csv_path,
        has_header=has_header,
        target=target,
        spec=spec,
        candidates=candidates,
        input_schema=input_schema,
    )
    sizes = [weight_count(paths[0]) for paths in candidates] if spec.evaluation.one_se_rule else None
    if replacement:
        return select_with_replacement(outputs, y, task=spec.task, rounds=most, sizes=sizes)
    return select_members(outputs, y, task=spec.task, most=most, sizes=sizes)


def weight_count(path: Path) -> int:
    """How many weights a saved model trains (a network's size; normalization statistics not counted)."""
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def evaluate_job(
    *,
    csv_path: Path,
    has_header: bool,
    target: str,
    spec: JobSpec,
    model_path: Path,
    input_schema: dict[str, Any],
    trained_on_validation: bool = False,
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"val", "test", "baselines", "flags"}`` for the job's ``best``, scoring the saved file itself.

    ``trained_on_validation`` (a refit): the validation rows say nothing about the model, so it is
    scored on the test rows only; without test rows the baselines are compared with ``selection``, the
    chosen trial's own validation scores before the refit (optimistic for the network, so a flag that
    still fires is no false alarm).
    """
    data = load_prepared(csv_path, has_header=has_header, target=target, spec=spec)
    model = keras.saving.load_model(model_path, safe_mode=True)
    n_classes = len(data.classes)
    network: dict[str, float] = {}
    for prefix, (x, y) in {"val_": (data.x_val, data.y_val), "test_": (data.x_test, data.y_test)}.items():
        if len(y) and not (prefix == "val_" and trained_on_validation):
            network |= score(
                spec.task, y, outputs_of(model, x, input_schema), n_classes=n_classes, prefix=prefix
            )
    found: dict[str, Any] = {"test_rows": len(data.y_test)}
    if not trained_on_validation:
        found["val"] = {k: v for k, v in network.items() if k.startswith("val_")}
    elif not len(data.y_test) and selection:
        network |= {k: v for k, v in selection.items() if k.startswith("val_") and isinstance(v, int | float)}
    if len(data.y_test):
        found["test"] = {k: v for k, v in network.items() if k.startswith("test_")}
    if spec.evaluation.baselines:
        baselines = fitted_baselines(
            baseline_key(csv_path, has_header=has_header, target=target, spec=spec),
            lambda: fit_baselines(
                data,
                spec.split.seed,
                balanced=spec.training.class_weight == "balanced",
                most_rows=spec.evaluation.baseline_rows,
            ),
        )
        found["baselines"] = baselines
        found["flags"] = _flags(spec.task, network, baselines, on="test_" if len(data.y_test) else "val_")
    return found


def _flags(
    task: str, network: dict[str, float], baselines: dict[str, dict[str, float]], on: str
) -> list[Any]:
    """A flag when a baseline beats the network on the unbiased split (test when held out, else val)."""
    metric, higher = PRIMARY[task]
    key = f"{on}{metric}"
    ours = network.get(key)
    if ours is None:
        return []
    name, theirs = max(
        ((n, s[key]) for n, s in baselines.items() if key in s),
        key=lambda item: item[1] if higher else -item[1],
        default=(None, None),
    )
    if name is None or theirs is None:
        return []
    margin = (theirs - ours) if higher else (ours - theirs)
    if margin <= 0:
        return []
    return [
        {
            "flag": "baseline_beats_network",
            "baseline": name,
            "metric": key,
            "margin": round(float(margin), 6),
            "message": f"{name.replace('_', ' ')} scores {key} {theirs:.4f}, "
            f"{margin:.4f} {'above' if higher else 'below'} the network's {ours:.4f}: try the default "
            "search, more epochs or regularization, or use the baseline",
        }
    ]
