"""The job spec: every option of the pipeline, with the reference article's rules as defaults."""

from __future__ import annotations

import copy
import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import FieldError, InvalidInput
from models.search_space import GRID_CAP, SearchSpace, extract_space, is_distribution, layer_value
from models.status import JobKind

Task = Literal["binary", "multiclass", "regression"]
Activation = Literal["relu", "tanh", "sigmoid", "elu", "selu", "leaky_relu", "gelu", "swish", "linear"]
Initializer = Literal[
    "auto",
    "he_normal",
    "he_uniform",
    "glorot_uniform",
    "glorot_normal",
    "random_normal",
    "random_uniform",
    "zeros",
]
Optimizer = Literal["adam", "rmsprop", "sgd", "nadam", "adadelta", "adagrad"]
# keras.optimizers.<Name>()'s learning_rate default (Keras 3).
KERAS_LEARNING_RATES: dict[Optimizer, float] = {
    "adam": 0.001,
    "rmsprop": 0.001,
    "sgd": 0.01,
    "nadam": 0.001,
    "adadelta": 0.001,
    "adagrad": 0.001,
}

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "auc"),
    "multiclass": ("accuracy",),
    "regression": ("rmse", "mae"),
}
MAX_CLASSES = 1000
MAX_SEED = 2**32 - 1  # numpy's and Keras' seed range
MAX_REFIT_NETWORKS = 20  # a search's refit trains seeds x trials networks, averaged in one model
MAX_MISSING_MARKERS = 1000
# A network past this many weights (64 x 4096 is ~1 billion, ~17 GB with Adam) cannot train on a worker.
MAX_PARAMETERS = 20_000_000
MULTICLASS_INTEGER_MAX_DISTINCT = 20


class _Strict(BaseModel):
    """Unknown fields are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SplitSpec(_Strict):
    """How rows are split into training and validation."""

    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = Field(1, ge=0, le=MAX_SEED)
    stratify: bool = True


class PreprocessingSpec(_Strict):
    """Preprocessing fitted on the training split only and saved inside the model."""

    normalization: Literal["standard", "minmax", "none"] = "standard"
    impute: Literal["mean", "median", "none"] = "mean"
    missing_values: dict[str, list[float | str]] = Field(default_factory=dict)
    categorical: Literal["one_hot", "none"] = "one_hot"

    @field_validator("missing_values", mode="before")
    @classmethod
    def _empty_list_is_empty_dict(cls, value: Any) -> Any:
        return {} if value == [] else value

    @field_validator("missing_values")
    @classmethod
    def _bounded(cls, value: dict[str, list[float | str]]) -> dict[str, list[float | str]]:
        if sum(len(markers) for markers in value.values()) > MAX_MISSING_MARKERS:
            raise ValueError(f"at most {MAX_MISSING_MARKERS} missing-value markers in all")
        return value


class LayerSpec(_Strict):
    """One hidden Dense layer."""

    units: int = Field(10, ge=1, le=4096)
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


def _default_layers() -> list[LayerSpec]:
    return [LayerSpec(), LayerSpec()]


class ModelSpec(_Strict):
    """The network: hidden layers, initialization and regularization."""

    layers: list[LayerSpec] = Field(default_factory=_default_layers, max_length=64)
    initializer: Initializer = "auto"
    batch_norm: bool = False
    # On the hidden kernels; without hidden layers, on the output kernel (a regularized linear model).
    l1: float = Field(0.0, ge=0.0, le=10.0)
    l2: float = Field(0.0, ge=0.0, le=10.0)


class EarlyStoppingSpec(_Strict):
    """Stop when the monitored metric stops improving."""

    monitor: str = "val_loss"
    patience: int = Field(10, ge=0, le=10_000)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best_weights: bool = True

    @property
    def maximize(self) -> bool:
        """Accuracy and AUC improve upwards; losses and errors downwards."""
        return "accuracy" in self.monitor or "auc" in self.monitor


class TrainingSpec(_Strict):
    """Optimizer, clipping, epochs and early stopping."""

    optimizer: Optimizer = "adam"
    # None: the optimizer's own Keras default, as compile(optimizer="sgd") gets it (sgd 0.01, the others
    # 0.001), so a search over optimizers trains each at its usual rate, not SGD at a tenth of it.
    learning_rate: float | None = Field(None, gt=0.0, le=10.0)
    clipnorm: float | None = Field(None, gt=0.0)
    clipvalue: float | None = Field(None, gt=0.0)
    epochs: int = Field(100, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=1 << 16)
    seed: int = Field(1, ge=0, le=MAX_SEED)
    # auto: the compiled JAX loop where it can run the spec, else model.fit; reference: always model.fit.
    engine: Literal["auto", "fast", "reference"] = "auto"
    early_stopping: EarlyStoppingSpec | None = Field(default_factory=EarlyStoppingSpec)
    # balanced: each class's rows weigh n / (classes x its rows) in the training loss (scikit-learn's
    # "balanced"), so a rare class counts as much as a common one. Classification only.
    class_weight: Literal["none", "balanced"] = "none"

    @property
    def applied_learning_rate(self) -> float:
        """The learning rate training uses: the spec's, else the optimizer's Keras default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return KERAS_LEARNING_RATES[self.optimizer]


MAX_INITIAL_TRIALS = 20


class SearchSpec(_Strict):
    """A hyperparameter search over the spec (run by ``search`` jobs)."""

    algorithm: Literal["random", "bayesian", "hyperband", "grid"] = "random"
    objective: str | None = None  # default: val_accuracy for classification, val_loss for regression
    direction: Literal["max", "min"] | None = None  # default: from the objective's name
    max_trials: int = Field(10, ge=1)
    executions_per_trial: int = Field(1, ge=1, le=10)
    max_concurrent_trials: int = Field(2, ge=1, le=64)
    # Trials one worker task trains together as one vectorized program (None: by algorithm, see
    # worker.coordinator.population_size); max_concurrent_trials such tasks run at once.
    population_size: int | None = Field(None, ge=1, le=256)
    max_consecutive_failures: int = Field(3, ge=1, le=100)
    max_wallclock_s: float | None = Field(None, gt=0)
    target_score: float | None = None  # stop once the objective reaches it (direction-aware)
    # Trials to run first, as Optuna's enqueue_trial: each maps parameter names (keras-tuner's, as a
    # trial's hyperparameters show them: num_layers, units0, learning_rate) to values in the space;
    # the names it leaves out take the oracle's draw. Random and Bayesian searches only.
    initial_trials: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_INITIAL_TRIALS)
    num_layers: Any = None
    layer: Any = None


class EvaluationSpec(_Strict):
    """Honest scores: rows held out from training, early stopping and selection; baselines beside the net."""

    # Split off first (seeded by split.seed, stratified like it): never trained on, never used to stop
    # early or to pick a trial; the job's chosen model is scored on them once, at the end.
    test_fraction: float = Field(0.0, ge=0.0, le=0.5)
    # A regularized linear model and gradient-boosted trees fitted on the same training rows.
    baselines: bool = True
    # The baselines fit on about this many training rows (drawn at random, each class in proportion
    # and at least one row of each, seeded by split.seed; each baseline reports its train_rows): past
    # ~100,000 rows boosted trees gain little and their fit would outlast the network's. None: all.
    baseline_rows: int | None = Field(100_000, ge=100)
    # After a search: the saved model averages the outputs of the k best trials (1: the best alone).
    ensemble: int = Field(1, ge=1, le=10)
    # k-fold cross-validation of each search trial (1: one validation split, split.validation_fraction):
    # the rows left after the test split are cut into k folds (stratified, seeded by split.seed, as
    # scikit-learn's (Stratified)KFold(k, shuffle=True)); each trial trains once per fold, its score is
    # the mean over folds. ``fold`` picks the fold that validates (a search sets it per execution).
    folds: int = Field(1, ge=1, le=10)
    fold: int = Field(0, ge=0, le=9)
    # After a search: the best trial's configuration retrained on training + validation rows for the
    # epoch count early stopping chose, and saved instead of the trial's own model. Only test rows
    # judge it (without them it is not compared with the baselines).
    refit: bool = False
    # The refit trains each pick this many times, from seeds training.seed, +1, ..., and saves the mean
    # of all their outputs as one model (1: one network per pick).
    refit_seeds: int = Field(1, ge=1, le=10)
    # The refit averages this many picks among the 2x as many best trials, chosen by ensemble selection
    # with replacement on the trials' validation outputs (a trial picked twice counts twice); 1: the
    # best trial's configuration alone.
    refit_trials: int = Field(1, ge=1, le=10)
    # Where the final model is chosen among the best trials' models (refit_trials or ensemble above 1):
    # the one-standard-error rule. Start from the trial with the fewest weights among those whose
    # validation loss the best's does not beat by more than one standard error (of the per-row
    # differences), and let another join only where it lowers the loss by more than one standard error.
    one_se_rule: bool = False

    @model_validator(mode="after")
    def _fold_in_range(self) -> EvaluationSpec:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} is not one of the {self.folds} folds (0 to {self.folds - 1})")
        if self.refit and self.ensemble > 1:
            raise ValueError("refit retrains the best trial alone; it cannot be combined with an ensemble")
        for name in ("refit_seeds", "refit_trials"):
            if getattr(self, name) > 1 and not self.refit:
                raise ValueError(f"{name} shapes the refit: it needs refit true")
        if self.one_se_rule and self.refit_trials == 1 and self.ensemble == 1:
            raise ValueError(
                "one_se_rule chooses among the best trials' models: it needs refit_trials or ensemble above 1"
            )
        if self.refit_seeds * self.refit_trials > MAX_REFIT_NETWORKS:
            raise ValueError(
                f"refit_seeds x refit_trials is {self.refit_seeds * self.refit_trials} networks; "
                f"at most {MAX_REFIT_NETWORKS}"
            )
        return self


class JobSpec(_Strict):
    """The whole spec; ``{}`` is valid and means the article's defaults."""

    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    split: SplitSpec = Field(default_factory=SplitSpec)
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    search: SearchSpec | None = None


def parse_spec(raw: dict[str, Any]) -> JobSpec:
    """Validate a raw spec, turning pydantic's errors into an ``invalid_spec`` domain error."""
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        errors = [
            FieldError(loc=("spec", *exc_loc), msg=err["msg"])
            for err in exc.errors()
            for exc_loc in [tuple(err["loc"])]
        ]
        first = errors[0]
        where = ".".join(str(part) for part in first.loc)
        raise InvalidInput("invalid_spec", f"{where}: {first.msg}", errors) from exc


def detect_task(column: dict[str, Any]) -> Task:
    """Pick binary, multiclass or regression from the target column's profile."""
    distinct = int(column["distinct"])
    if distinct == 2:
        return "binary"
    if column["dtype"] != "numeric":
        return "multiclass"
    if column.get("integer") and distinct <= MULTICLASS_INTEGER_MAX_DISTINCT:
        return "multiclass"
    return "regression"


def _target_errors(task: Task, column: dict[str, Any]) -> InvalidInput | None:
    name, distinct = column["name"], int(column["distinct"])
    if distinct < 2:
        return InvalidInput(
            "target_single_class",
            f"target column '{name}' has {distinct} distinct value(s); at least 2 are needed",
            [FieldError(("target",), "target has a single class")],
        )
    if task == "regression" and column["dtype"] != "numeric":
        return InvalidInput(
            "target_not_numeric",
            f"target column '{name}' is {column['dtype']}, but regression needs a numeric target",
            [FieldError(("target",), "regression needs a numeric target")],
        )
    if task == "binary" and distinct != 2:
        return InvalidInput(
            "target_not_binary",
            f"task is binary but target column '{name}' has {distinct} distinct values",
            [FieldError(("spec", "task"), "binary needs exactly 2 classes")],
        )
    if task == "multiclass" and distinct > MAX_CLASSES:
        return InvalidInput(
            "too_many_classes",
            f"target column '{name}' has {distinct} classes; at most {MAX_CLASSES} are supported",
            [FieldError(("target",), "too many classes")],
        )
    return None


def _monitorable(task: Task) -> set[str]:
    names = {"loss", *METRICS_BY_TASK[task]}
    return names | {f"val_{name}" for name in names}


MAX_TRIALS_CAP = 500
# About a day of a 2-core CPU's float32 throughput times a thousand: past it a job cannot finish anywhere
# it would be run (TUNEFORGE_MAX_JOB_FLOPS).
MAX_JOB_FLOPS = 1e18
MINIMIZED = ("loss", "rmse", "mae", "mse")


def _reject_distributions(raw: dict[str, Any], path: tuple[str | int, ...] = ()) -> None:
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else []
    for key, value in items:
        if is_distribution(value):
            where = ".".join(str(p) for p in ("spec", *path, key))
            raise InvalidInput(
                "invalid_spec",
                f"{where}: distributions are only allowed in search jobs",
                [FieldError(("spec", *path, key), "distribution in a train job")],
            )
        _reject_distributions(value, (*path, key))


def _check_candidates(space: SearchSpace) -> None:
    """Every value a search may try must itself be a valid spec value (dropout 1.5 is a 422 now)."""
    for param in space.params:
        for value in param.candidates():
            probe = copy.deepcopy(space.base)
            node: Any = probe
            for key in param.path[:-1]:
                node = node[key]
            node[param.path[-1]] = value
            parse_spec(probe)
    for name in space.layer:
        for value in {repr(v): v for v in _layer_candidates(space, name)}.values():
            try:
                LayerSpec.model_validate({name: value})
            except ValidationError as exc:
                where = f"spec.search.layer.{name}"
                message = exc.errors()[0]["msg"]
                raise InvalidInput(
                    "invalid_spec",
                    f"{where}: {message} (value {value!r})",
                    [FieldError(("spec", "search", "layer", name), message)],
                ) from exc


def _layer_candidates(space: SearchSpace, name: str) -> list[Any]:
    param = space.layer[name]
    return param.candidates() if hasattr(param, "candidates") else [layer_value(space, name, 0, {})]


def _check_initial_trials(space: SearchSpace, search: SearchSpec) -> None:
    """Each initial trial names parameters of the space and values it could have drawn."""
    if search.initial_trials and search.algorithm not in ("random", "bayesian"):
        raise InvalidInput(
            "invalid_spec",
            f"spec.search.initial_trials: a {search.algorithm} search chooses its own trials; "
            "initial trials go with random or bayesian",
            [FieldError(("spec", "search", "initial_trials"), "not for this algorithm")],
        )
    params = space.params_by_name()
    for index, trial in enumerate(search.initial_trials):
        for name, value in trial.items():
            where = ("spec", "search", "initial_trials", index, name)
            if name not in params:
                message = f"'{name}' is not a searched parameter; they are: " + ", ".join(sorted(params))
            elif not params[name].allows(value):
                message = f"{value!r} is outside the parameter's range or choices"
            else:
                continue
            raise InvalidInput(
                "invalid_search_space",
                ".".join(map(str, where)) + f": {message}",
                [FieldError(where, message)],
            )


def _resolve_search(space: SearchSpace, spec: JobSpec, task: Task, max_trials_cap: int) -> SearchSpec:
    search = spec.search or SearchSpec()
    objective = search.objective or ("val_loss" if task == "regression" else "val_accuracy")
    if objective not in _monitorable(task):
        raise InvalidInput(
            "invalid_spec",
            f"spec.search.objective: '{objective}' is not produced by a {task} task; choose one of "
            + ", ".join(sorted(_monitorable(task))),
            [FieldError(("spec", "search", "objective"), "unknown metric")],
        )
    direction = search.direction or ("min" if objective.endswith(MINIMIZED) else "max")
    if search.max_trials > max_trials_cap:
        raise InvalidInput(
            "invalid_spec",
            f"spec.search.max_trials: {search.max_trials} is above the server's cap of {max_trials_cap}",
            [FieldError(("spec", "search", "max_trials"), "above the cap")],
        )
    if space.is_empty():
        raise InvalidInput(
            "invalid_search_space",
            'the search has nothing to search: give a distribution such as {"choice": [...]} for a field',
            [FieldError(("spec",), "no distribution")],
        )
    _check_initial_trials(space, search)
    if search.algorithm == "grid" and space.grid_size() > GRID_CAP:
        raise InvalidInput(
            "invalid_search_space",
            f"spec.search: the grid has {space.grid_size():.3g} points, above the cap of {GRID_CAP}; "
            "use random, bayesian or hyperband, or give steps and fewer choices",
            [FieldError(("spec", "search", "algorithm"), "grid too large")],
        )
    return search.model_copy(update={"objective": objective, "direction": direction})


def stored_spec(raw: dict[str, Any], spec: JobSpec, *, kind: JobKind) -> dict[str, Any]:
    """The resolved spec as the job keeps it: defaults filled in, distributions where the user put them."""
    document = spec.model_dump(mode="json")
    if kind != JobKind.SEARCH:
        return document
    space = extract_space(raw)
    for param in space.params:
        node: Any = document
        for key in param.path[:-1]:
            node = node[key]
        original: Any = raw
        for key in param.path:
            original = original[key]
        node[param.path[-1]] = original
    for key in ("num_layers", "layer"):
        if key in (raw.get("search") or {}):
            document["search"][key] = raw["search"][key]
    return document


def resolve_spec(
    raw: dict[str, Any],
    *,
    kind: JobKind,
    target: str,
    columns: list[dict[str, Any]],
    max_trials_cap: int = MAX_TRIALS_CAP,
    rows: int | None = None,
    max_flops: float = MAX_JOB_FLOPS,
) -> JobSpec:
    """Validate ``raw`` against the dataset and return it with every default filled in.

    For a search the returned spec holds each searched field's default (keras-tuner's: the
    minimum or the first choice); ``stored_spec`` puts the distributions back.
    """
    space: SearchSpace | None = None
    if kind == JobKind.SEARCH:
        space = extract_space(raw)
        spec = parse_spec(space.base)
        _check_candidates(space)
    else:
        _reject_distributions(raw)
        spec = parse_spec(raw)
        for name, why in (
            ("ensemble", "averages a search's best trials; a train job has one model"),
            ("folds", "cross-validates a search's trials; a train job has one split"),
            ("refit", "retrains a search's best trial; a train job trains once"),
        ):
            if getattr(spec.evaluation, name) != EvaluationSpec.model_fields[name].default:
                raise InvalidInput(
                    "invalid_spec",
                    f"spec.evaluation.{name} {why}",
                    [FieldError(("spec", "evaluation", name), "only for search jobs")],
                )
    by_name = {column["name"]: column for column in columns}
    if target not in by_name:
        raise InvalidInput(
            "unknown_target",
            f"target column '{target}' is not in the dataset; columns are: " + ", ".join(sorted(by_name)),
            [FieldError(("target",), "unknown column")],
        )
    if len(columns) < 2:
        raise InvalidInput("no_features", "the dataset has no column besides the target")
    task: Task = detect_task(by_name[target]) if spec.task == "auto" else spec.task
    problem = _target_errors(task, by_name[target])
    if problem:
        raise problem
    if task == "regression" and spec.training.class_weight != "none":
        raise InvalidInput(
            "invalid_spec",
            "spec.training.class_weight weighs classes; a regression target has none",
            [FieldError(("spec", "training", "class_weight"), "only for binary and multiclass tasks")],
        )
    unknown = sorted(set(spec.preprocessing.missing_values) - set(by_name))
    if unknown:
        raise InvalidInput(
            "invalid_spec",
            "spec.preprocessing.missing_values names unknown columns: " + ", ".join(unknown),
            [
                FieldError(("spec", "preprocessing", "missing_values", name), "unknown column")
                for name in unknown
            ],
        )
    stopping = spec.training.early_stopping
    if stopping and stopping.monitor not in _monitorable(task):
        raise InvalidInput(
            "invalid_spec",
            f"spec.training.early_stopping.monitor: '{stopping.monitor}' is not produced by a "
            f"{task} task; choose one of " + ", ".join(sorted(_monitorable(task))),
            [FieldError(("spec", "training", "early_stopping", "monitor"), "unknown metric")],
        )
    weights = _check_size(spec, space, n_features=len(columns) - 1)
    search = _resolve_search(space, spec, task, max_trials_cap) if space is not None else None
    if rows is not None:
        _check_work(spec.model_copy(update={"search": search}), space, weights, rows, max_flops)
    training = spec.training
    if space is None:  # a train job shows the rate it trains at; a search's trials each resolve their own
        training = training.model_copy(update={"learning_rate": training.applied_learning_rate})
    return spec.model_copy(update={"task": task, "search": search, "training": training})


def _largest(param: Any, fixed: int) -> int:
    if param is None or not hasattr(param, "kind"):
        return fixed
    if param.kind == "choice":
        return int(max(v for v in param.values if isinstance(v, int | float)))
    return int(param.high)


def _check_size(spec: JobSpec, space: SearchSpace | None, *, n_features: int) -> int:
    """Refuse networks no worker can hold: weights of the largest candidate, before one-hot encoding."""
    widths = [layer.units for layer in spec.model.layers]
    if space is not None:
        depth = _largest(space.num_layers, space.fixed_layers or len(widths))
        width = _largest(space.layer.get("units"), max(widths, default=1))
        widths = [width] * depth
    sizes = [max(n_features, 1), *widths, 1]
    weights = sum(a * b + b for a, b in itertools.pairwise(sizes))
    if weights > MAX_PARAMETERS:
        raise InvalidInput(
            "network_too_large",
            f"the network (its largest candidate) has about {weights:,} weights; at most "
            f"{MAX_PARAMETERS:,} are supported: use fewer or narrower layers",
            [FieldError(("spec", "model", "layers"), "too many weights")],
        )
    return weights


def _check_work(spec: JobSpec, space: SearchSpace | None, weights: int, rows: int, max_flops: float) -> None:
    """Refuse jobs whose training alone is beyond any worker: ~6 floating-point operations per weight,
    row and epoch (forward and backward), times the trials and executions of a search."""
    epochs = spec.training.epochs
    if space is not None:
        searched = [p for p in space.params if p.path == ("training", "epochs")]
        epochs = max([epochs, *(_largest(p, epochs) for p in searched)])
    runs = spec.search.max_trials * spec.search.executions_per_trial if spec.search else 1
    runs *= spec.evaluation.folds
    flops = 6.0 * weights * rows * epochs * runs
    if flops > max_flops:
        raise InvalidInput(
            "job_too_large",
            f"the job would take about {flops:.2g} floating-point operations ({weights:,} weights x "
            f"{rows:,} rows x {epochs:,} epochs x {runs:,} runs x 6); at most {max_flops:.2g} are "
            "accepted: use fewer epochs, trials or rows, or a smaller network",
            [FieldError(("spec",), "too much work")],
        )
