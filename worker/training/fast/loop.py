"""The compiled training loop: epochs of minibatch steps, validation, probes and early stopping, all in XLA.

One call runs up to ``limit`` epochs of every member of a population (``jax.vmap`` over members) and
returns each epoch's metrics, so the host only reports, checks for cancellation and calls again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from worker.training.fast.network import (
    HIDDEN_KERNELS,
    STACKED,
    Shape,
    add_totals,
    empty_totals,
    evaluate,
    forward,
    penalty,
    predictions,
    read_totals,
    row_losses,
)
from worker.training.fast.optimizers import (
    FamilyState,
    applied_gradient,
    clip_by_norm,
    family_init,
    family_update,
)

MAX_CHUNK = 64  # epochs one call may run (the size of its metrics buffers)


@dataclass(frozen=True)
class Plan:
    """The static part of a bucket's program: network shape and training rules shared by its members."""

    shape: Shape
    clipnorm: bool
    clipvalue: bool
    batch_size: int
    n_train: int
    monitor: int | None  # index into the metric names; None = no early stopping
    maximize: bool
    restore_best: bool
    # Any member drops units. Without dropout the minibatch step draws no masks (hashed, see masks.py,
    # but still a pass over every unit of every layer).
    dropout: bool = True
    # Rows carry class weights (training.class_weight): the loss and the training metrics weigh them.
    weighted: bool = False


def _flat(tree: Any) -> jax.Array:
    """Every weight in one vector: the optimizers' elementwise rules then compile once, not per tensor
    (a deep padded network has dozens of tensors; per tensor, they were most of the program)."""
    return ravel_pytree(tree)[0]


@partial(jax.jit, static_argnums=0)
def start_members(plan: Plan, params: Any, cfgs: dict[str, Any], seeds: jax.Array) -> dict[str, Any]:
    """Every member's training state from its initial weights: optimizer state, RNG, early stopping."""
    layers = (plan.shape.depth, plan.shape.width)

    def one(p, cfg, seed):
        stats = {"mean": jnp.zeros(layers), "var": jnp.ones(layers)} if plan.shape.batch_norm else {}
        return {
            "params": p,
            "stats": stats,
            "opt_state": family_init(_flat(p), cfg["optimizer"]),
            "rng": jax.random.key_data(jax.random.split(jax.random.key(seed))[1]),
            "epoch": jnp.int32(0),
            "best": jnp.float32(-jnp.inf if plan.maximize else jnp.inf),
            "best_epoch": jnp.int32(0),
            "wait": jnp.int32(0),
            "best_params": p,
            "best_stats": stats,
            "stopped": jnp.bool_(False),
            "diverged": jnp.bool_(False),
        }

    return jax.vmap(one)(params, cfgs, seeds)


def _update(plan: Plan, cfg: dict[str, Any], grads: Any, state: FamilyState):
    """The member's own optimizer step, after Keras' clipping (by norm per tensor, then by value)."""
    if plan.clipnorm:
        grads = {
            name: (jax.vmap(clip_by_norm, in_axes=(0, None)) if name in STACKED else clip_by_norm)(
                g, cfg["clipnorm"]
            )
            for name, g in grads.items()
        }
    flat_grads, unflatten = ravel_pytree(grads)
    if plan.clipvalue:
        flat_grads = jnp.clip(flat_grads, -cfg["clipvalue"], cfg["clipvalue"])
    updates, state = family_update(flat_grads, state, cfg["optimizer"], cfg["learning_rate"])
    return unflatten(updates), state


def _probe(plan: Plan, params, stats, cfg, data, key):
    """Per-layer kernel gradient norms (raw and as applied) and dead-unit fractions on the probe rows."""
    shape = plan.shape

    names = [k for k in (*HIDDEN_KERNELS, "out_kernel") if k in params]

    def probe_loss(kernels):
        p = dict(params, **kernels)
        raw, _, _ = forward(shape, p, stats, cfg, data["x_probe"], training=True, key=key)
        predicted = predictions(shape, raw, cfg)
        return jnp.mean(row_losses(shape, raw, predicted, data["y_probe"])) + penalty(shape, p, cfg)

    grads = jax.grad(probe_loss)({k: params[k] for k in names})
    clip = {
        "clipnorm": cfg["clipnorm"] if plan.clipnorm else None,
        "clipvalue": cfg["clipvalue"] if plan.clipvalue else None,
    }

    def norms(name: str, applied: bool) -> jax.Array:
        """One norm per layer's kernel (the stacked layers' each clipped on its own, as Keras' are)."""
        g = grads[name] if name in STACKED else grads[name][None]
        if applied:
            g = jax.vmap(lambda one: applied_gradient(one, **clip))(g)
        return jnp.sqrt(jnp.sum(g * g, axis=(1, 2)))

    raw_norms = jnp.concatenate([norms(k, applied=False) for k in names])
    applied = jnp.concatenate([norms(k, applied=True) for k in names])
    _, _, hidden = forward(shape, params, stats, cfg, data["x_probe"], training=False, hidden=True)
    units = cfg["units"]  # (depth, width): 1 where a member has a unit
    dead = jnp.sum(units * (jnp.max(hidden, axis=1) <= 0.0), axis=1) / jnp.maximum(
        jnp.sum(units, axis=1), 1.0
    )
    return raw_norms, applied, dead


def _epoch(plan: Plan, member, cfg, data):
    """One epoch of one member: shuffled minibatches, then validation and the probe."""
    shape, size, n = plan.shape, plan.batch_size, plan.n_train
    steps = -(-n // size)
    rng, shuffle_key, drop_key, probe_key = jax.random.split(member["rng"], 4)
    order = jnp.concatenate([jax.random.permutation(shuffle_key, n), jnp.zeros(steps * size - n, jnp.int32)])
    weights = jnp.concatenate([jnp.ones(n), jnp.zeros(steps * size - n)])

    def step(carry, batch):
        params, stats, opt_state, totals = carry
        index, w, key = batch
        x, y = data["x_train"][index], data["y_train"][index]
        # As Keras applies class_weight: a weighted sum over the batch, divided by its row count.
        rw = w * data["w_train"][index] if plan.weighted else w

        def loss_fn(p):
            raw, new_stats, _ = forward(
                shape, p, stats, cfg, x, training=True, key=key if plan.dropout else None, weights=w
            )
            predicted = predictions(shape, raw, cfg)
            loss = jnp.sum(rw * row_losses(shape, raw, predicted, y)) / jnp.sum(w) + penalty(shape, p, cfg)
            return loss, (predicted, new_stats)

        (loss, (predicted, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = _update(plan, cfg, grads, opt_state)
        params = optax.apply_updates(params, updates)
        totals = add_totals(
            shape, totals, loss, lax.stop_gradient(predicted), y, w, rw if plan.weighted else None
        )
        return (params, new_stats, opt_state, totals), None

    batches = (order.reshape(steps, size), weights.reshape(steps, size), jax.random.split(drop_key, steps))
    carry = (
        member["params"],
        member["stats"],
        member["opt_state"],
        empty_totals(shape, weighted=plan.weighted),
    )
    (params, stats, opt_state, totals), _ = lax.scan(step, carry, batches)
    metrics = jnp.concatenate(
        [read_totals(shape, totals), evaluate(shape, params, stats, cfg, data["x_val"], data["y_val"])]
    )
    raw_norms, applied, dead = _probe(plan, params, stats, cfg, data, probe_key)
    return (
        dict(member, params=params, stats=stats, opt_state=opt_state, rng=rng),
        metrics,
        raw_norms,
        applied,
        dead,
    )


def _stop_rules(plan: Plan, member, cfg, metrics):
    """Keras' EarlyStopping.on_epoch_end, the epoch budget, and a NaN loss, for one member."""
    epoch = member["epoch"]  # 0-based index of the epoch just run
    finite = jnp.all(jnp.isfinite(metrics[jnp.array([0, len(metrics) // 2])]))
    out = dict(member, epoch=epoch + 1, diverged=~finite)
    stop = (epoch + 1 >= cfg["max_epochs"]) | ~finite
    if plan.monitor is not None:
        current = metrics[plan.monitor]
        sign = 1.0 if plan.maximize else -1.0
        improved = sign * (current - sign * cfg["min_delta"]) > sign * member["best"]
        wait = jnp.where(improved, 0, member["wait"] + 1)
        out |= {
            "best": jnp.where(improved, current, member["best"]),
            "best_epoch": jnp.where(improved, epoch, member["best_epoch"]),
            "wait": wait,
        }
        if plan.restore_best:
            keep = improved | (epoch == 0)
            out["best_params"] = jax.tree_util.tree_map(
                lambda new, old: jnp.where(keep, new, old), member["params"], member["best_params"]
            )
            out["best_stats"] = jax.tree_util.tree_map(
                lambda new, old: jnp.where(keep, new, old), member["stats"], member["best_stats"]
            )
        stop = stop | (~improved & (wait >= cfg["patience"]) & (epoch > 0))
    out["stopped"] = stop
    return out


def _member_epoch(plan: Plan, member, cfg, data):
    trained, metrics, raw_norms, applied, dead = _epoch(plan, member, cfg, data)
    judged = _stop_rules(plan, trained, cfg, metrics)
    # A member that had already stopped keeps its state untouched (it still shares the vector program).
    frozen = jax.tree_util.tree_map(lambda new, old: jnp.where(member["stopped"], old, new), judged, member)
    return frozen, metrics, raw_norms, applied, dead


@partial(jax.jit, static_argnums=0)
def run_chunk(plan: Plan, members, cfgs, data, limit):
    """Run up to ``limit`` epochs of every member still training; buffers hold one row per epoch run."""
    population = cfgs["learning_rate"].shape[0]
    n_metrics = len(plan.shape.metric_names())
    layers = plan.shape.depth + 1
    buffers = {
        "metrics": jnp.zeros((MAX_CHUNK, population, n_metrics)),
        "raw": jnp.zeros((MAX_CHUNK, population, layers)),
        "applied": jnp.zeros((MAX_CHUNK, population, layers)),
        "dead": jnp.zeros((MAX_CHUNK, population, plan.shape.depth)),
        "ran": jnp.zeros((MAX_CHUNK, population), bool),
    }
    step = jax.vmap(partial(_member_epoch, plan), in_axes=(0, 0, None))

    def cond(carry):
        i, members, _ = carry
        return (i < jnp.minimum(limit, MAX_CHUNK)) & ~jnp.all(members["stopped"])

    def body(carry):
        i, members, buffers = carry
        ran = ~members["stopped"]
        members, metrics, raw_norms, applied, dead = step(members, cfgs, data)
        rows = {"metrics": metrics, "raw": raw_norms, "applied": applied, "dead": dead, "ran": ran}
        buffers = {k: buffers[k].at[i].set(rows[k]) for k in buffers}
        return i + 1, members, buffers

    count, members, buffers = lax.while_loop(cond, body, (jnp.int32(0), members, buffers))
    return members, buffers, count


@partial(jax.jit, static_argnums=0)
def final_metrics(plan: Plan, params, stats, cfgs, data):
    """Inference-mode metrics of every member's final weights on validation, then on training rows."""

    def one(p, s, cfg):
        return (
            evaluate(plan.shape, p, s, cfg, data["x_val"], data["y_val"]),
            evaluate(plan.shape, p, s, cfg, data["x_train"], data["y_train"]),
        )

    return jax.vmap(one)(params, stats, cfgs)
