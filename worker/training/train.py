"""Training runs: data -> preprocessing -> model -> fit (fast or reference engine) -> saved file."""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.metrics import r2_score

from models.settings import Settings
from models.spec import JobSpec
from worker.training.artifacts import save_model
from worker.training.builder import build_model, build_preprocessor, compile_model, fit_preprocessing
from worker.training.callbacks import EpochReporter
from worker.training.checkpoints import Checkpoint
from worker.training.data import Prepared, class_weights, load_prepared
from worker.training.diagnostics import analyze, make_probe, probe_rows
from worker.training.engines import EngineChoice, Run, choose_engine, features_matrix
from worker.training.inputs import frame_to_inputs, to_tensors
from worker.training.reference_resume import ResumableEarlyStopping, SaveCheckpoint, restore
from worker.training.reporting import Reporter, TrainingFailed


@dataclass
class TrainResult:
    """What a finished run produced."""

    task: str
    metrics: dict[str, Any]
    input_schema: dict[str, Any]
    epochs_run: int
    best_epoch: int
    cancelled: bool = False
    sha256: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    engine: EngineChoice | None = None
    failure: TrainingFailed | None = None  # set instead of raised when one run of a population fails
    # For a run trained without a model path: writes its model to a path, returns the file's sha256.
    save: Callable[[Path], str] | None = field(default=None, repr=False)

    def trial_metrics(self) -> dict[str, Any]:
        """The trial row's metrics: final scores, the kept epoch's readings, epochs run."""
        kept = self.history[self.best_epoch - 1] if self.history else {}
        return {
            "final": self.metrics,
            "best_epoch": {"epoch": self.best_epoch, **kept},
            "epochs_run": self.epochs_run,
        }


@dataclass
class RunData:
    """A run's split rows as the model's named inputs, with the fitted preprocessing schema."""

    data: Prepared
    schema: list[dict[str, Any]]
    x_train: dict[str, Any]
    x_val: dict[str, Any]
    target_scale: tuple[float, float]
    input_schema: dict[str, Any]


def _seed(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def load_run_data(
    *, csv_path: Path, has_header: bool, target: str, spec: JobSpec, refit: bool = False
) -> RunData:
    """Parse, split and fit the preprocessing exactly as the saved model will apply it."""
    data = load_prepared(csv_path, has_header=has_header, target=target, spec=spec, refit=refit)
    schema = fit_preprocessing(data.x_train, data.features, spec)
    scale = (
        (float(data.y_train.mean()), float(data.y_train.std()) or 1.0)
        if spec.task == "regression"
        else (0.0, 1.0)
    )
    return RunData(
        data=data,
        schema=schema,
        x_train=to_tensors(frame_to_inputs(data.x_train, schema)),
        x_val=to_tensors(frame_to_inputs(data.x_val, schema)),
        target_scale=scale,
        input_schema={"task": spec.task, "target": target, "classes": data.classes, "inputs": schema},
    )


def _evaluate(
    model: keras.Model, x: dict[str, np.ndarray], y: np.ndarray, prefix: str, task: str
) -> dict[str, float]:
    scores = model.evaluate(x, y, verbose=0, return_dict=True)
    metrics = {f"{prefix}{k}": float(v) for k, v in scores.items()}
    if task == "regression":
        predicted = model.predict(x, verbose=0).reshape(-1)
        metrics[f"{prefix}r2"] = float(r2_score(y, predicted))
    return metrics


def best_epoch_of(history: list[dict[str, float]], spec: JobSpec) -> int:
    """The epoch whose weights the model keeps (1-based): the monitor's best if restored, else the last."""
    stopping = spec.training.early_stopping
    if not history or stopping is None or not stopping.restore_best_weights:
        return len(history)
    values = [h.get(stopping.monitor, float("nan")) for h in history]
    if all(np.isnan(v) for v in values):
        return len(history)
    pick = np.nanargmax if stopping.maximize else np.nanargmin
    return int(pick(values)) + 1


def _diverged(epoch: int, history: list[dict[str, float]], diagnostics: dict[str, Any]) -> TrainingFailed:
    return TrainingFailed(
        "training_diverged",
        f"the loss became NaN/inf at epoch {epoch}; lower the learning rate, "
        "enable normalization or set training.clipnorm",
        {"epoch": epoch, "last_epoch": history[-1], "diagnostics": diagnostics},
    )


def run_training(
    *,
    csv_path: Path,
    has_header: bool,
    target: str,
    spec: JobSpec,
    reporter: Reporter,
    model_path: Path,
    checkpoint: Checkpoint | None = None,
    refit: bool = False,
) -> TrainResult:
    """Train one model as ``spec`` says, reporting each epoch (resuming from ``checkpoint`` if it holds
    state); save it to ``model_path``. ``refit``: train on the validation rows too (see ``prepare``)."""
    choice = choose_engine(spec)
    if choice.engine == "fast":
        run_spec = Run(spec, reporter, model_path, checkpoint, refit=refit)
        [result] = train_runs(csv_path=csv_path, has_header=has_header, target=target, runs=[run_spec])
        if result.failure is not None:
            raise result.failure
        return result
    keras.backend.clear_session()  # a long-lived worker child must not accumulate old graphs
    _seed(spec.training.seed)
    run = load_run_data(csv_path=csv_path, has_header=has_header, target=target, spec=spec, refit=refit)
    result = _train_reference(run, spec, reporter, model_path, checkpoint)
    result.engine = choice
    return result


def _train_reference(
    run: RunData, spec: JobSpec, reporter: Reporter, model_path: Path, checkpoint: Checkpoint | None
) -> TrainResult:
    data, x_train, x_val = run.data, run.x_train, run.x_val
    model = build_model(run.schema, spec, n_classes=len(data.classes), target_scale=run.target_scale)
    compile_model(model, spec)
    watcher = EpochReporter(reporter, make_probe(model, x_train, data.y_train))
    callbacks: list[keras.callbacks.Callback] = [watcher]
    rules, stopping = spec.training.early_stopping, None
    if rules is not None:
        stopping = ResumableEarlyStopping(
            monitor=rules.monitor,
            patience=rules.patience,
            min_delta=rules.min_delta,
            restore_best_weights=rules.restore_best_weights,
            mode="max" if rules.maximize else "min",
        )
        callbacks.append(stopping)
    weights = class_weights(data, spec)
    initial_epoch = 0
    if checkpoint is not None:
        initial_epoch = restore(model, checkpoint, watcher, stopping)
        callbacks.append(SaveCheckpoint(checkpoint, watcher, stopping))
    model.fit(
        x_train,
        data.y_train,
        validation_data=(x_val, data.y_val),
        initial_epoch=initial_epoch,
        epochs=spec.training.epochs,
        batch_size=spec.training.batch_size,
        callbacks=callbacks,
        verbose=0,
        shuffle=True,
        class_weight=None if weights is None else dict(enumerate(weights.tolist())),
    )
    diagnostics = analyze(
        history=watcher.history, measurements=watcher.measurements, schema=run.schema, spec=spec
    )
    if watcher.diverged_at is not None:
        raise _diverged(watcher.diverged_at, watcher.history, diagnostics)
    epochs_run = len(watcher.history)
    if watcher.cancelled:
        return TrainResult(
            spec.task,
            {},
            run.input_schema,
            epochs_run,
            epochs_run,
            cancelled=True,
            history=watcher.history,
            diagnostics=diagnostics,
        )
    metrics = _evaluate(model, x_val, data.y_val, "val_", spec.task)
    metrics |= _evaluate(model, x_train, data.y_train, "", spec.task)
    metrics |= {"train_rows": len(data.y_train), "val_rows": len(data.y_val)}
    sha = save_model(model, model_path)
    return TrainResult(
        spec.task,
        metrics,
        run.input_schema,
        epochs_run,
        best_epoch_of(watcher.history, spec),
        sha256=sha,
        history=watcher.history,
        diagnostics=diagnostics,
    )


def _data_key(run: Run) -> str:
    # Runs with the same task, split and preprocessing train on the very same matrices.
    spec = run.spec
    return json.dumps(
        [
            spec.task,
            spec.split.model_dump(),
            spec.preprocessing.model_dump(),
            spec.evaluation.test_fraction,
            spec.evaluation.folds,
            spec.evaluation.fold,
            spec.training.class_weight,
            run.refit,
        ],
        sort_keys=True,
    )


def train_runs(*, csv_path: Path, has_header: bool, target: str, runs: list[Run]) -> list[TrainResult]:
    """Train runs (fast ones as populations sharing their data, the rest with model.fit); results in order."""
    groups: dict[str, list[int]] = {}
    results: list[TrainResult | None] = [None] * len(runs)
    choices = [choose_engine(run.spec) for run in runs]
    for index, run in enumerate(runs):
        if choices[index].engine == "fast":
            groups.setdefault(_data_key(run), []).append(index)
        else:
            results[index] = _reference_run(csv_path, has_header, target, run, choices[index])
    for indices in groups.values():
        members = [(runs[i], choices[i]) for i in indices]
        for index, result in zip(indices, _train_group(csv_path, has_header, target, members), strict=True):
            results[index] = result
    return [r for r in results if r is not None]


def _reference_run(
    csv_path: Path, has_header: bool, target: str, run: Run, choice: EngineChoice
) -> TrainResult:
    path = run.model_path or Path(tempfile.mkstemp(prefix="tuneforge-run-", suffix=".keras")[1])
    try:
        result = run_training(
            csv_path=csv_path,
            has_header=has_header,
            target=target,
            spec=run.spec,
            reporter=run.reporter,
            model_path=path,
            checkpoint=run.checkpoint,
            refit=run.refit,
        )
    except TrainingFailed as exc:
        return TrainResult(run.spec.task, {}, {}, 0, 0, failure=exc, engine=choice)
    if run.model_path is None and result.sha256 is not None:
        sha = result.sha256
        result.save = lambda destination: (shutil.move(path, destination), sha)[1]
        weakref.finalize(result, path.unlink, missing_ok=True)  # a model nobody saved is not kept
    return result


def _train_group(
    csv_path: Path, has_header: bool, target: str, chosen: list[tuple[Run, EngineChoice]]
) -> list[TrainResult]:
    from worker.training.fast.lanes import training_lanes
    from worker.training.fast.population import Matrices, Member, train_population

    runs = [run for run, _ in chosen]
    base = runs[0].spec
    # No gc pass here (it costs a quarter second per run): the fast engine builds only small Keras graphs.
    keras.backend.clear_session(free_memory=False)
    _seed(base.training.seed)
    run = load_run_data(
        csv_path=csv_path, has_header=has_header, target=target, spec=base, refit=runs[0].refit
    )
    preprocessor = build_preprocessor(run.schema, base)
    matrices = Matrices(
        task=base.task,
        x_train=features_matrix(preprocessor, run.x_train),
        y_train=run.data.y_train,
        x_val=features_matrix(preprocessor, run.x_val),
        y_val=run.data.y_val,
        n_classes=len(run.data.classes),
        target_scale=run.target_scale,
        class_weights=class_weights(run.data, base),
    )
    members = [Member(r.spec, r.reporter, checkpoint=r.checkpoint) for r in runs]
    model = None
    if len(runs) == 1:
        # A lone run starts from the Keras model's own initialization, as model.fit with its seed would;
        # a population draws the same distributions in JAX (a Keras model per member costs ~0.1 s).
        model = build_model(run.schema, base, n_classes=len(run.data.classes), target_scale=run.target_scale)
        members[0].initial = _dense_weights(model)
    settings = Settings()
    trained = train_population(
        members,
        matrices,
        probe_rows=probe_rows(len(matrices.y_train)),
        lanes=training_lanes(settings.training_lanes),
        programs_in_memory=settings.programs_in_memory,
    )
    rows = {"train_rows": len(run.data.y_train), "val_rows": len(run.data.y_val)}
    return [
        _fast_result(run, r, choice, t, rows, model) for (r, choice), t in zip(chosen, trained, strict=True)
    ]


def _dense_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return {name: [np.asarray(w) for w in model.get_layer(name).get_weights()] for name in names}


def _fast_result(
    run: RunData,
    spec_run: Run,
    choice: EngineChoice,
    trained: Any,
    rows: dict[str, int],
    model: keras.Model | None,
) -> TrainResult:
    spec = spec_run.spec
    diagnostics = analyze(
        history=trained.history, measurements=trained.measurements, schema=run.schema, spec=spec
    )
    epochs_run = len(trained.history)
    result = TrainResult(
        spec.task,
        {},
        run.input_schema,
        epochs_run,
        best_epoch_of(trained.history, spec),
        history=trained.history,
        diagnostics=diagnostics,
        engine=choice,
    )
    if trained.diverged_at is not None:
        result.failure = _diverged(trained.diverged_at, trained.history, diagnostics)
        return result
    if trained.cancelled:
        result.cancelled, result.best_epoch = True, epochs_run
        return result
    result.metrics = trained.metrics | rows
    if spec_run.model_path is not None:
        result.sha256 = save_model(export_model(run, spec, trained.weights, model), spec_run.model_path)
    else:
        result.save = lambda path: save_model(export_model(run, spec, trained.weights, model), path)
    return result


def export_model(
    run: RunData, spec: JobSpec, weights: dict[str, list[np.ndarray]], model: keras.Model | None = None
) -> keras.Model:
    """The saved model (preprocessing inside, raw rows in) holding the fast engine's trained weights."""
    if model is None:
        model = build_model(run.schema, spec, n_classes=len(run.data.classes), target_scale=run.target_scale)
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    compile_model(model, spec)
    return model
