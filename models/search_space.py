"""Search spaces: distributions inside a spec, validated at submit, turned into concrete specs per trial."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from models.errors import FieldError, InvalidInput

DIST_KEYS = frozenset({"int", "float", "choice"})
OPTION_KEYS = frozenset({"step", "log"})
LAYER_FIELDS = ("units", "activation", "dropout")
GRID_CAP = 10_000
Path = tuple[str | int, ...]

MAX_DEPTH = 64  # as for a fixed list of layers (spec.model.layers)
MAX_CHOICES = 1000


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter, named as keras-tuner names it (``units0``, ``optimizer``)."""

    name: str
    path: Path
    kind: str  # int | float | choice
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()

    @property
    def default(self) -> Any:
        """keras-tuner's default: the minimum of a range, the first choice."""
        if self.kind == "choice":
            return self.values[0]
        return int(self.low) if self.kind == "int" else self.low

    def candidates(self) -> list[Any]:
        """Values worth validating: every choice, or both ends of a range."""
        if self.kind == "choice":
            return list(self.values)
        return [self.default, int(self.high) if self.kind == "int" else self.high]

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is one this parameter could take: a choice, or a number in the range."""
        if self.kind == "choice":
            # 1 and 1.0 are one number (JSON does not tell them apart); True is not 1.
            return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in self.values)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is None or self.log:
            return True
        # On the step's grid from the low end (a float's within rounding).
        steps = (value - self.low) / self.step
        return abs(steps - round(steps)) < 1e-9

    def size(self) -> float:
        """How many distinct values a grid would enumerate (inf for a continuous range)."""
        if self.kind == "choice":
            return len(self.values)
        if self.step is None:
            return math.inf if self.kind == "float" else int(self.high - self.low) + 1
        return math.floor((self.high - self.low) / self.step) + 1


@dataclass
class SearchSpace:
    """The searched parameters of a spec, and the spec with those fields fixed to placeholders."""

    base: dict[str, Any]
    params: list[Param] = field(default_factory=list)
    num_layers: Param | None = None
    fixed_layers: int | None = None
    layer: dict[str, Param | Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        """True when nothing is searched: no distribution anywhere, depth and layer fields fixed."""
        return (
            not self.params
            and self.num_layers is None
            and not any(isinstance(p, Param) for p in self.layer.values())
        )

    def params_by_name(self) -> dict[str, Param]:
        """Every searched parameter by its keras-tuner name, a layer field once per possible layer."""
        found = {param.name: param for param in self.params}
        if self.num_layers is not None:
            found["num_layers"] = self.num_layers
        deepest = int(self.num_layers.high) if self.num_layers else self.fixed_layers or 0
        for field_name, param in self.layer.items():
            if isinstance(param, Param):
                found |= {f"{field_name}{index}": param for index in range(deepest)}
        return found

    def grid_size(self) -> float:
        """Size of the full grid (conditional layers counted at the deepest depth)."""
        size = math.prod(p.size() for p in self.params)
        depth_sizes = [int(self.num_layers.high)] if self.num_layers else [self.fixed_layers or 0]
        per_layer = math.prod(p.size() for p in self.layer.values() if isinstance(p, Param))
        return size * (self.num_layers.size() if self.num_layers else 1) * per_layer ** max(depth_sizes)


def is_distribution(value: Any) -> bool:
    """True for ``{"int": [...]}``, ``{"float": [...], "log": true}`` or ``{"choice": [...]}``."""
    return (
        isinstance(value, dict)
        and len(DIST_KEYS & value.keys()) == 1
        and value.keys() <= DIST_KEYS | OPTION_KEYS
    )


def _where(path: Path) -> str:
    return ".".join(str(p) for p in ("spec", *path))


def _bad(path: Path, message: str) -> InvalidInput:
    return InvalidInput(
        "invalid_search_space", f"{_where(path)}: {message}", [FieldError(("spec", *path), message)]
    )


def parse_distribution(name: str, path: Path, raw: dict[str, Any]) -> Param:
    """Validate one distribution: non-empty choices, min <= max, log ranges above zero."""
    (kind,) = DIST_KEYS & raw.keys()
    body, step, log = raw[kind], raw.get("step"), bool(raw.get("log", False))
    if kind == "choice":
        if not isinstance(body, list) or not body:
            raise _bad(path, "a choice needs a non-empty list of values")
        if len(body) > MAX_CHOICES:
            raise _bad(path, f"a choice may list at most {MAX_CHOICES} values")
        if len({repr(v) for v in body}) != len(body):
            raise _bad(path, "choice values must be distinct")
        return Param(name, path, "choice", values=tuple(body))
    if not (isinstance(body, list) and len(body) == 2 and all(isinstance(v, int | float) for v in body)):
        raise _bad(path, f"'{kind}' needs [min, max]")
    low, high = body
    if kind == "int" and not all(isinstance(v, int) for v in body):
        raise _bad(path, "'int' bounds must be integers")
    if low > high:
        raise _bad(path, f"min {low} is greater than max {high}")
    if log and low <= 0:
        raise _bad(path, f"a log range must stay above 0 (min is {low})")
    if step is not None and (not isinstance(step, int | float) or step <= 0):
        raise _bad(path, "step must be a positive number")
    return Param(name, path, kind, low=low, high=high, step=step, log=log)


def _walk(value: Any, path: Path, found: list[tuple[Path, dict[str, Any]]]) -> None:
    if is_distribution(value):
        found.append((path, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, (*path, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, (*path, index), found)


def _param_name(path: Path, taken: set[str]) -> str:
    # Layer fields read like the guide's (units0, activation0); others by their field name.
    if len(path) == 4 and path[:2] == ("model", "layers") and isinstance(path[2], int):
        name = f"{path[3]}{path[2]}"
    else:
        name = str(path[-1])
    return name if name not in taken else ".".join(str(p) for p in path)


def _set(tree: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def extract_space(raw: dict[str, Any]) -> SearchSpace:
    """Find every distribution in ``raw`` (and search.num_layers/layer); placeholders take their place."""
    base = copy.deepcopy(raw)
    search = base.get("search") if isinstance(base.get("search"), dict) else {}
    assert isinstance(search, dict)
    space = SearchSpace(base=base)
    num_layers, layer = search.pop("num_layers", None), search.pop("layer", None)
    if num_layers is not None:
        if is_distribution(num_layers):
            space.num_layers = parse_distribution("num_layers", ("search", "num_layers"), num_layers)
            # 0 hidden layers is a (multinomial) logistic or linear regression inside the same pipeline.
            if space.num_layers.kind != "int" or (space.num_layers.low or 0) < 0:
                raise _bad(("search", "num_layers"), "num_layers must be an int range starting at 0 or more")
            if (space.num_layers.high or 0) > MAX_DEPTH:
                raise _bad(("search", "num_layers"), f"num_layers may reach at most {MAX_DEPTH} layers")
        elif isinstance(num_layers, int) and 0 <= num_layers <= MAX_DEPTH:
            space.fixed_layers = num_layers
        else:
            raise _bad(
                ("search", "num_layers"), f'expected an int from 0 to {MAX_DEPTH} or {{"int": [min, max]}}'
            )
    if layer is not None:
        if not isinstance(layer, dict) or not layer.keys() <= set(LAYER_FIELDS):
            raise _bad(("search", "layer"), "layer may set only " + ", ".join(LAYER_FIELDS))
        for key, value in layer.items():
            layer_path: Path = ("search", "layer", key)
            space.layer[key] = parse_distribution(key, layer_path, value) if is_distribution(value) else value
        if space.num_layers is None and space.fixed_layers is None:
            space.fixed_layers = len((base.get("model") or {}).get("layers") or [None, None])
    found: list[tuple[Path, dict[str, Any]]] = []
    _walk({k: v for k, v in base.items() if k != "search"}, (), found)
    taken = {"num_layers"} | {f"{k}{i}" for k in LAYER_FIELDS for i in range(64)}
    for path, dist in found:
        param = parse_distribution(_param_name(path, taken), path, dist)
        taken.add(param.name)
        space.params.append(param)
        _set(base, path, param.default)
    return space


def layer_value(space: SearchSpace, field_name: str, index: int, values: dict[str, Any]) -> Any:
    """A layer field's value for layer ``index``: searched, fixed in search.layer, or left to the spec."""
    spec = space.layer.get(field_name)
    if isinstance(spec, Param):
        return values.get(f"{field_name}{index}", spec.default)
    return spec


def materialize(space: SearchSpace, values: dict[str, Any]) -> dict[str, Any]:
    """The concrete raw spec of one trial: ``values`` (keras-tuner's) written into the base spec."""
    spec = copy.deepcopy(space.base)
    spec.pop("search", None)
    for param in space.params:
        _set(spec, param.path, values.get(param.name, param.default))
    depth = values.get("num_layers", space.num_layers.default) if space.num_layers else space.fixed_layers
    if depth is not None:
        model = spec.setdefault("model", {})
        layers = []
        for index in range(int(depth)):
            layer = {k: layer_value(space, k, index, values) for k in LAYER_FIELDS if k in space.layer}
            layers.append(layer)
        model["layers"] = layers
    return spec
