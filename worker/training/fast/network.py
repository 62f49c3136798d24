"""The guide's dense network as pure JAX functions, padded so trials of different shapes share one program.

A member (one trial's run) has up to ``depth`` hidden layers of up to ``width`` units each. Units beyond
a layer's own width are masked to zero and the output layer reads the member's own last hidden layer,
so the padded network computes exactly what the member's own network would, and padded weights get
zero gradients (they stay zero under every optimizer). Every hidden layer past the first has the same
shape, so a deep program runs them as one ``lax.scan`` and compiles in about the time a 3-layer one
does (8-9 s against 19 s unrolled for 12 layers on this 2-core CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from worker.training.fast.masks import keep_mask

EPSILON = 1e-7  # Keras' backend epsilon (AUC's outer thresholds)
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
AUC_THRESHOLDS = 200
UNROLLED_DEPTH = 4  # programs this deep or shallower run their layers unrolled (see forward)

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.2),  # Keras' default negative slope
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "swish": jax.nn.swish,
    "linear": lambda z: z,
}

METRICS = {
    "binary": ("loss", "accuracy", "auc"),
    "multiclass": ("loss", "accuracy"),
    "regression": ("loss", "rmse", "mae"),
}


@dataclass(frozen=True)
class Shape:
    """Everything static about a compiled program: one per bucket of trials."""

    task: str
    n_features: int
    n_outputs: int
    depth: int  # hidden layers: as many as its deepest member's, padded
    width: int  # units of every hidden layer: as many as its widest member's layer, padded
    activations: tuple[str, ...]
    batch_norm: bool

    @property
    def last_width(self) -> int:
        """What the output layer reads: a hidden layer, or the inputs of a network without one."""
        return self.width if self.depth else self.n_features

    def metric_names(self) -> tuple[str, ...]:
        """History keys in Keras' order: training metrics, then the same on validation."""
        names = METRICS[self.task]
        return names + tuple(f"val_{n}" for n in names)


# The hidden layers' kernels as stored: the first layer's, then the others stacked (absent at depth 0).
HIDDEN_KERNELS = ("kernel_in", "kernel")
# Weights stored as one slice per hidden layer (the kernels past the first layer's); Keras clips each
# layer's on its own.
STACKED = frozenset({"kernel", "bias", "gamma", "beta"})


def hidden_kernels(params: dict[str, Any]) -> list[Any]:
    """The hidden layers' kernels as stored (see HIDDEN_KERNELS)."""
    return [params[k] for k in HIDDEN_KERNELS if k in params]


def layer_kernel(params: dict[str, Any], i: int, member: int | None = None) -> Any:
    """Hidden layer ``i``'s kernel in the stored layout (of population ``member`` when stacked by member)."""
    name, at = ("kernel_in", ()) if i == 0 else ("kernel", (i - 1,))
    return params[name][at if member is None else (member, *at)]


def _activate(shape: Shape, z: jax.Array, which: jax.Array) -> jax.Array:
    """The activation ``which`` (an index into the shape's) of every unit: a program mixing activations
    computes each on every unit, so tanh and sigmoid share one tanh (sigmoid(z) = (1 + tanh(z/2)) / 2):
    transcendentals and their gradients cost as much as a 128-unit layer's matrix product here."""
    names = shape.activations
    if len(names) == 1:
        return ACTIVATIONS[names[0]](z)
    half = jnp.array([0.5 if n == "sigmoid" else 1.0 for n in names])[which]
    out = jnp.tanh(z * half) * half + (1.0 - half)  # tanh, or sigmoid where half is 0.5
    for index, name in enumerate(names):
        if name not in ("tanh", "sigmoid"):
            out = jnp.where(which == index, ACTIVATIONS[name](z), out)
    return out


def forward(
    shape: Shape,
    params: dict[str, Any],
    stats: dict[str, Any],
    cfg: dict[str, Any],
    x: jax.Array,
    *,
    training: bool,
    key: jax.Array | None = None,
    weights: jax.Array | None = None,
    hidden: bool = False,
) -> tuple[jax.Array, dict[str, Any], jax.Array]:
    """Raw outputs (logits, or the standardized regression value), updated BN stats, and (``hidden``)
    every hidden layer's activations stacked (depth, rows, width)."""
    if not shape.depth:
        return x @ params["out_kernel"] + params["out_bias"], stats, jnp.zeros((0, x.shape[0], shape.width))

    def layer(h, i, kernel, bias, norm):
        z = h @ kernel + bias
        moments: tuple[jax.Array, ...] = ()
        if shape.batch_norm:
            gamma, beta, mean, var = norm
            if training:
                w = weights[:, None] if weights is not None else jnp.ones((z.shape[0], 1))
                batch_mean = jnp.sum(w * z, axis=0) / jnp.sum(w)
                batch_var = jnp.sum(w * (z - batch_mean) ** 2, axis=0) / jnp.sum(w)
                moments = (
                    mean * BN_MOMENTUM + batch_mean * (1 - BN_MOMENTUM),
                    var * BN_MOMENTUM + batch_var * (1 - BN_MOMENTUM),
                )
                mean, var = batch_mean, batch_var
            z = (z - mean) / jnp.sqrt(var + BN_EPSILON) * gamma + beta
        a = _activate(shape, z, cfg["activation"][i]) * cfg["units"][i]
        if training and key is not None:
            rate = cfg["dropout"][i]
            # fold_in, not split(depth): a member's masks must not depend on how deep its program is padded.
            keep = keep_mask(jax.random.fold_in(key, i), rate, a.shape)
            a = jnp.where(keep, a / (1.0 - rate), 0.0)
        return a, moments

    def norm(at: Any) -> tuple[jax.Array, ...]:
        if not shape.batch_norm:
            return ()
        return (params["gamma"][at], params["beta"][at], stats["mean"][at], stats["var"][at])

    first, first_moments = layer(x, 0, params["kernel_in"], params["bias"][0], norm(0))

    def deeper(carry, xs):
        h, last = carry
        i, kernel, bias, layer_norm = xs
        a, moments = layer(h, i, kernel, bias, layer_norm)
        # A shallower member's output reads its own last layer; the layers past it compute unused values.
        return (a, jnp.where(cfg["last"] == i, a, last)), (a if hidden else (), moments)

    steps = (jnp.arange(1, shape.depth), params["kernel"], params["bias"][1:], norm(slice(1, None)))
    # A shallow program is unrolled: it compiles fast either way, and a loop costs it a third more time
    # per step (2 s against 2.7 s for 3 layers of 128, measured); a deep one loops and compiles once.
    unroll: bool | int = True if shape.depth <= UNROLLED_DEPTH else 1
    (_, last), (rest, rest_moments) = lax.scan(deeper, (first, first), steps, unroll=unroll)
    new_stats = stats
    if shape.batch_norm and training:
        new_stats = {
            name: jnp.concatenate([first_moments[k][None], rest_moments[k]])
            for k, name in enumerate(("mean", "var"))
        }
    layers = jnp.concatenate([first[None], rest]) if hidden else jnp.zeros((0, x.shape[0], shape.width))
    return last @ params["out_kernel"] + params["out_bias"], new_stats, layers


def predictions(shape: Shape, raw: jax.Array, cfg: dict[str, Any]) -> jax.Array:
    """What the saved model outputs: probabilities, or values in the target's units."""
    if shape.task == "binary":
        return jax.nn.sigmoid(raw[:, 0])
    if shape.task == "multiclass":
        return jax.nn.softmax(raw, axis=-1)
    return raw[:, 0] * cfg["target_std"] + cfg["target_mean"]


def row_losses(shape: Shape, raw: jax.Array, predicted: jax.Array, y: jax.Array) -> jax.Array:
    """Per-row loss as Keras' TensorFlow backend computes it: from the logits behind a sigmoid or
    softmax output (so a saturated unit still has a gradient), squared error for regression."""
    if shape.task == "binary":
        z = raw[:, 0]
        return -(y * jax.nn.log_sigmoid(z) + (1.0 - y) * jax.nn.log_sigmoid(-z))
    if shape.task == "multiclass":
        log_p = jax.nn.log_softmax(raw, axis=-1)
        return -jnp.take_along_axis(log_p, y[:, None].astype(jnp.int32), axis=1)[:, 0]
    return (predicted - y) ** 2


def penalty(shape: Shape, params: dict[str, Any], cfg: dict[str, Any]) -> jax.Array:
    """L1/L2 on the hidden kernels (without hidden layers: on the output kernel, the only one), as Keras
    adds its regularization losses to the loss."""
    total = jnp.zeros(())
    for kernel in hidden_kernels(params) if shape.depth else [params["out_kernel"]]:
        total = total + cfg["l1"] * jnp.sum(jnp.abs(kernel)) + cfg["l2"] * jnp.sum(kernel * kernel)
    return total


def _thresholds() -> jax.Array:
    inner = [(i + 1) / (AUC_THRESHOLDS - 1) for i in range(AUC_THRESHOLDS - 2)]
    return jnp.array([-EPSILON, *inner, 1.0 + EPSILON], dtype=jnp.float32)


def empty_totals(shape: Shape, *, weighted: bool = False) -> dict[str, jax.Array]:
    """Running sums from which a pass's metrics are read (Keras' stateful metrics)."""
    totals = {"loss": jnp.zeros(()), "rows": jnp.zeros(()), "a": jnp.zeros(()), "b": jnp.zeros(())}
    if weighted:
        totals["metric_rows"] = jnp.zeros(())
    if shape.task == "binary":
        # AUC's confusion counts, kept as a histogram: weight of positive and negative rows by how many
        # thresholds their prediction is above (0 to AUC_THRESHOLDS).
        totals |= {name: jnp.zeros(AUC_THRESHOLDS + 1) for name in ("pos", "neg")}
    return totals


def add_totals(
    shape: Shape,
    totals: dict[str, jax.Array],
    loss: jax.Array,
    predicted: jax.Array,
    y: jax.Array,
    w: jax.Array,
    metric_w: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Fold one batch (its mean loss, outputs, targets, row weights) into the running sums.

    ``metric_w``: the rows' sample weights where they differ from ``w`` (class weights): Keras weighs
    the metrics by them, the loss by the batch's row count.
    """
    rows = jnp.sum(w)
    out = dict(totals)
    out["loss"] = totals["loss"] + loss * rows
    out["rows"] = totals["rows"] + rows
    if metric_w is not None:
        out["metric_rows"] = totals["metric_rows"] + jnp.sum(metric_w)
        w = metric_w
    if shape.task == "binary":
        out["a"] = totals["a"] + jnp.sum(w * ((predicted > 0.5) == (y > 0.5)))
        # Comparing every row with every threshold (as Keras does) was 90% of a small network's step;
        # a binary search over the sorted thresholds (8 unrolled steps) finds the same count.
        above = jnp.searchsorted(_thresholds(), predicted, side="left", method="scan_unrolled")
        # searchsorted sorts NaN after every threshold; Keras' ``>`` puts it above none.
        above = jnp.where(jnp.isnan(predicted), 0, above)
        out["pos"] = totals["pos"].at[above].add(w * y)
        out["neg"] = totals["neg"].at[above].add(w * (1.0 - y))
    elif shape.task == "multiclass":
        out["a"] = totals["a"] + jnp.sum(w * (jnp.argmax(predicted, axis=-1) == y))
    else:
        out["a"] = totals["a"] + jnp.sum(w * (predicted - y) ** 2)
        out["b"] = totals["b"] + jnp.sum(w * jnp.abs(predicted - y))
    return out


def confusion(t: dict[str, jax.Array]) -> tuple[jax.Array, ...]:
    """Weighted true/false positives and negatives at each threshold, from the running histograms."""
    # Rows above threshold j are those above more than j thresholds: the histogram's sums from j + 1 on.
    tp, fp = (jnp.cumsum(t[name][::-1])[::-1][1:] for name in ("pos", "neg"))
    return tp, fp, jnp.sum(t["pos"]) - tp, jnp.sum(t["neg"]) - fp


def _auc(t: dict[str, jax.Array]) -> jax.Array:
    # Keras' AUC: ROC over 200 thresholds, trapezoids between them.
    tp, fp, fn, tn = confusion(t)
    recall = jnp.where(tp + fn > 0, tp / jnp.maximum(tp + fn, 1e-30), 0.0)
    fpr = jnp.where(fp + tn > 0, fp / jnp.maximum(fp + tn, 1e-30), 0.0)
    return jnp.sum((fpr[:-1] - fpr[1:]) * (recall[:-1] + recall[1:]) / 2.0)


def read_totals(shape: Shape, t: dict[str, jax.Array]) -> jax.Array:
    """The pass's metrics in ``METRICS[task]`` order."""
    loss = t["loss"] / jnp.maximum(t["rows"], 1e-30)
    rows = jnp.maximum(t.get("metric_rows", t["rows"]), 1e-30)
    if shape.task == "binary":
        return jnp.stack([loss, t["a"] / rows, _auc(t)])
    if shape.task == "multiclass":
        return jnp.stack([loss, t["a"] / rows])
    return jnp.stack([loss, jnp.sqrt(t["a"] / rows), t["b"] / rows])


def evaluate(
    shape: Shape,
    params: dict[str, Any],
    stats: dict[str, Any],
    cfg: dict[str, Any],
    x: jax.Array,
    y: jax.Array,
) -> jax.Array:
    """Inference-mode metrics on a whole split (as ``model.evaluate``: loss includes the penalty)."""
    raw, _, _ = forward(shape, params, stats, cfg, x, training=False)
    predicted = predictions(shape, raw, cfg)
    loss = jnp.mean(row_losses(shape, raw, predicted, y)) + penalty(shape, params, cfg)
    w = jnp.ones(y.shape[0])
    return read_totals(shape, add_totals(shape, empty_totals(shape), loss, predicted, y, w))
