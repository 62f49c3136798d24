"""Watching training as the guide asks: per-layer gradient norms, dead ReLUs, and the flags they raise."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from models.spec import JobSpec

PROBE_ROWS = 512  # at most; on small data a quarter of the training rows (see probe_rows)
MIN_PROBE_ROWS = 128
VANISHING_RATIO = 1e-3  # first hidden layer's gradient vs the output layer's
EXPLODING_NORM = 1e3
DEAD_RELU_FRACTION = 0.5
OVERFIT_RISE = 0.05  # val_loss this much above its best while loss keeps falling
UNSCALED_RATIO = 100.0  # largest feature std / smallest


@dataclass
class Measurement:
    """One epoch's look inside the network, on a fixed probe batch of training rows."""

    grad_norms: dict[str, float]
    raw_grad_norms: dict[str, float]
    dead_relu: dict[str, float]


@dataclass
class GradientProbe:
    """Gradients and activations on a fixed probe batch (TensorFlow backend), once per epoch."""

    x: Any
    y: np.ndarray
    model: keras.Model
    _step: Any = None
    _activations: keras.Model | None = None
    dense_layers: list[str] = field(default_factory=list)
    relu_layers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        import tensorflow as tf

        self.dense_layers = [
            layer.name for layer in self.model.layers if isinstance(layer, keras.layers.Dense)
        ]
        self.relu_layers = [
            layer.name
            for layer in self.model.layers
            if isinstance(layer, keras.layers.Activation) and layer.name.startswith("relu_")
        ]
        kernels = [self.model.get_layer(name).kernel for name in self.dense_layers]
        if self.relu_layers:
            outputs = [self.model.get_layer(name).output for name in self.relu_layers]
            self._activations = keras.Model(self.model.inputs, outputs)
        model = self.model

        activations = self._activations

        # One traced function per trial: gradients and activations in a single graph call.
        @tf.function(reduce_retracing=True)
        def step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                predicted = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=predicted, training=True)
            grads = tape.gradient(loss, [k.value for k in kernels])
            outs = activations(x, training=False) if activations is not None else []
            return grads, outs if isinstance(outs, list | tuple) else [outs]

        self._step = step

    def _clip(self, grads: list[np.ndarray]) -> list[np.ndarray]:
        # The optimizer's own rule (Keras clips each tensor by norm, or each value): what it applies.
        optimizer = self.model.optimizer
        if optimizer.clipnorm:
            grads = [g * min(1.0, optimizer.clipnorm / max(float(np.linalg.norm(g)), 1e-30)) for g in grads]
        if optimizer.clipvalue:
            grads = [np.clip(g, -optimizer.clipvalue, optimizer.clipvalue) for g in grads]
        return grads

    def measure(self) -> Measurement:
        """Kernel gradient norms per Dense layer (raw and as applied) and dead-unit fractions."""
        grads, outputs = self._step(self.x, self.y)
        raw = [np.asarray(g) for g in grads]
        applied = self._clip(raw)
        dead = {
            name: float(np.mean(np.max(np.asarray(out), axis=0) <= 0.0))
            for name, out in zip(self.relu_layers, outputs, strict=True)
        }
        return Measurement(
            grad_norms={n: float(np.linalg.norm(g)) for n, g in zip(self.dense_layers, applied, strict=True)},
            raw_grad_norms={n: float(np.linalg.norm(g)) for n, g in zip(self.dense_layers, raw, strict=True)},
            dead_relu=dead,
        )


def probe_rows(n_train: int) -> int:
    """Rows the gradient probe reads each epoch: up to PROBE_ROWS, and no more than a quarter of the
    training split (but at least MIN_PROBE_ROWS).

    The probe is a forward and backward pass of its own: 512 rows on a 614-row split cost as much as
    the epoch's training did (a 10-trial guide population on Pima trained in 33-36 s warm with them,
    23 s with 153).
    """
    return min(n_train, PROBE_ROWS, max(MIN_PROBE_ROWS, n_train // 4))


def make_probe(model: keras.Model, x_train: dict[str, Any], y_train: np.ndarray) -> GradientProbe | None:
    """A probe on the first rows of the training split; None where the backend is not TensorFlow."""
    if keras.backend.backend() != "tensorflow":
        return None
    rows = probe_rows(len(y_train))
    x = {name: values[:rows] for name, values in x_train.items()}
    return GradientProbe(x=x, y=y_train[:rows], model=model)


def _flag(name: str, evidence: str, remedy: str, **data: Any) -> dict[str, Any]:
    return {"flag": name, "evidence": evidence, "remedy": remedy, **data}


def _vanishing(norms: list[dict[str, float]]) -> dict[str, Any] | None:
    if not norms or len(norms[0]) < 3:
        return None
    layers = list(norms[0])
    first, last = layers[0], layers[-1]
    ratios = [n[first] / n[last] for n in norms if n.get(last, 0) > 0 and math.isfinite(n[first])]
    if not ratios:
        return None
    ratio = float(np.median(ratios))
    if ratio >= VANISHING_RATIO:
        return None
    return _flag(
        "vanishing_gradients",
        f"the first layer's gradient is {ratio:.1e} of the output layer's (median over epochs)",
        "use ReLU hidden layers with He initialization (initializer 'auto'), batch normalization, "
        "or a shallower network",
        ratio=ratio,
    )


def _exploding(raw: list[dict[str, float]], history: list[dict[str, float]]) -> dict[str, Any] | None:
    peak = max((max(n.values()) for n in raw if n), default=0.0)
    nan_loss = any(not math.isfinite(h.get("loss", 0.0)) for h in history)
    if peak < EXPLODING_NORM and not nan_loss and math.isfinite(peak):
        return None
    evidence = f"a layer's gradient norm reached {peak:.3g}" + (
        " and the loss became NaN" if nan_loss else ""
    )
    return _flag(
        "exploding_gradients",
        evidence,
        "set training.clipnorm (e.g. 1.0), lower the learning rate, or normalize the input",
        peak_norm=peak,
    )


def _dead_relus(dead: list[dict[str, float]]) -> dict[str, Any] | None:
    if not dead or not dead[-1]:
        return None
    worst_layer, worst = max(dead[-1].items(), key=lambda item: item[1])
    if worst < DEAD_RELU_FRACTION:
        return None
    return _flag(
        "dead_relus",
        f"{worst:.0%} of the units of {worst_layer} output zero for every probe row",
        "lower the learning rate, use He initialization, or try leaky_relu/elu",
        layer=worst_layer,
        fraction=worst,
    )


def _overfitting(history: list[dict[str, float]]) -> dict[str, Any] | None:
    val = [h.get("val_loss", math.nan) for h in history]
    if len(val) < 6 or not all(math.isfinite(v) for v in val):
        return None
    best = int(np.argmin(val))
    loss_falling = history[-1]["loss"] < history[best]["loss"]
    rise = (val[-1] - val[best]) / max(abs(val[best]), 1e-12)
    if best >= len(val) - 2 or rise < OVERFIT_RISE or not loss_falling:
        return None
    return _flag(
        "overfitting",
        f"val_loss rose {rise:.0%} from its best at epoch {best + 1} while the training loss kept falling",
        "add dropout or L2 regularization, or rely on early stopping (restore_best_weights)",
        best_epoch=best + 1,
    )


def _unscaled(schema: list[dict[str, Any]], spec: JobSpec) -> dict[str, Any] | None:
    if spec.preprocessing.normalization != "none":
        return None
    scales = {f["column"]: f["std"] for f in schema if f["dtype"] == "numeric" and f["std"] > 0}
    if len(scales) < 2:
        return None
    big, small = max(scales, key=scales.__getitem__), min(scales, key=scales.__getitem__)
    ratio = scales[big] / scales[small]
    if ratio < UNSCALED_RATIO:
        return None
    return _flag(
        "unscaled_input",
        f"normalization is off and feature scales differ {ratio:.0f}x ('{big}' std {scales[big]:.3g}, "
        f"'{small}' std {scales[small]:.3g})",
        "set preprocessing.normalization to 'standard'",
        ratio=ratio,
    )


def analyze(
    *,
    history: list[dict[str, float]],
    measurements: list[Measurement],
    schema: list[dict[str, Any]],
    spec: JobSpec,
) -> dict[str, Any]:
    """The trial's diagnostics: flags with evidence and the guide's remedy, plus the last readings."""
    checks = [
        _vanishing([m.grad_norms for m in measurements]),
        _exploding([m.raw_grad_norms for m in measurements], history),
        _dead_relus([m.dead_relu for m in measurements]),
        _overfitting(history),
        _unscaled(schema, spec),
    ]
    last = measurements[-1] if measurements else None
    return {
        "flags": [check for check in checks if check],
        "grad_norms": last.grad_norms if last else {},
        "dead_relu": last.dead_relu if last else {},
    }
