"""The job spec: every option of the pipeline, with the reference article's rules as defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.errors import FieldError, InvalidInput
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

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "auc"),
    "multiclass": ("accuracy",),
    "regression": ("rmse", "mae"),
}
MAX_CLASSES = 1000
MULTICLASS_INTEGER_MAX_DISTINCT = 20


class _Strict(BaseModel):
    """Unknown fields are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SplitSpec(_Strict):
    """How rows are split into training and validation."""

    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 1
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
    l1: float = Field(0.0, ge=0.0, le=10.0)
    l2: float = Field(0.0, ge=0.0, le=10.0)


class EarlyStoppingSpec(_Strict):
    """Stop when the monitored metric stops improving."""

    monitor: str = "val_loss"
    patience: int = Field(10, ge=0, le=10_000)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best_weights: bool = True


class TrainingSpec(_Strict):
    """Optimizer, clipping, epochs and early stopping."""

    optimizer: Optimizer = "adam"
    learning_rate: float = Field(0.001, gt=0.0, le=10.0)
    clipnorm: float | None = Field(None, gt=0.0)
    clipvalue: float | None = Field(None, gt=0.0)
    epochs: int = Field(100, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=1 << 16)
    seed: int = 1
    early_stopping: EarlyStoppingSpec | None = Field(default_factory=EarlyStoppingSpec)


class SearchSpec(_Strict):
    """A hyperparameter search over the spec (run by ``search`` jobs)."""

    algorithm: Literal["random", "bayesian", "hyperband", "grid"] = "random"
    objective: str = "val_accuracy"
    direction: Literal["max", "min"] | None = None
    max_trials: int = Field(10, ge=1)
    executions_per_trial: int = Field(1, ge=1, le=10)
    max_concurrent_trials: int = Field(2, ge=1, le=64)
    num_layers: Any = None
    layer: Any = None


class JobSpec(_Strict):
    """The whole spec; ``{}`` is valid and means the article's defaults."""

    task: Literal["auto", "binary", "multiclass", "regression"] = "auto"
    split: SplitSpec = Field(default_factory=SplitSpec)
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
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


def resolve_spec(
    raw: dict[str, Any], *, kind: JobKind, target: str, columns: list[dict[str, Any]]
) -> JobSpec:
    """Validate ``raw`` against the dataset and return it with every default filled in."""
    spec = parse_spec(raw)
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
    if kind == JobKind.SEARCH:
        raise InvalidInput(
            "kind_not_supported",
            "search jobs are not available in this release; submit kind 'train'",
            [FieldError(("kind",), "not supported yet")],
        )
    return spec.model_copy(update={"task": task})
