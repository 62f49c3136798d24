"""Keras' optimizers and clipping rules expressed with optax, at Keras' default constants."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

# Keras uses epsilon 1e-7 everywhere and adds it outside the square root (optax's default differs).
KERAS_EPSILON = 1e-7


def _clip_by_norm(grad: jax.Array, max_norm: float | jax.Array) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(grad * grad))
    return grad * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))


def clip_each_by_norm(max_norm: float | jax.Array) -> optax.GradientTransformation:
    """Keras' ``clipnorm``: every gradient tensor is rescaled to at most ``max_norm`` on its own."""

    def clip(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(lambda g: _clip_by_norm(g, max_norm), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), clip)


def keras_optimizer(
    name: str, learning_rate: float | jax.Array, *, clipnorm: float | None, clipvalue: float | None
) -> optax.GradientTransformation:
    """The optax chain that updates weights as ``keras.optimizers.get(name)`` with these options would."""
    if name == "adam":
        core = optax.adam(learning_rate, eps=KERAS_EPSILON)
    elif name == "rmsprop":
        core = optax.rmsprop(learning_rate, decay=0.9, eps=KERAS_EPSILON, eps_in_sqrt=False)
    elif name == "sgd":
        core = optax.sgd(learning_rate)
    elif name == "nadam":
        core = optax.nadam(learning_rate, eps=KERAS_EPSILON)
    elif name == "adadelta":
        core = optax.adadelta(learning_rate, rho=0.95, eps=KERAS_EPSILON)
    elif name == "adagrad":
        core = optax.adagrad(learning_rate, initial_accumulator_value=0.1, eps=KERAS_EPSILON)
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    steps = []
    # Keras clips by norm first, then by value, before the optimizer sees the gradient.
    if clipnorm is not None:
        steps.append(clip_each_by_norm(clipnorm))
    if clipvalue is not None:
        steps.append(optax.clip(clipvalue))
    return optax.chain(*steps, core) if steps else core


def applied_gradient(
    grad: jax.Array, *, clipnorm: float | jax.Array | None, clipvalue: float | jax.Array | None
) -> jax.Array:
    """One kernel's gradient as the optimizer applies it (after Keras' clipping), for diagnostics."""
    if clipnorm is not None:
        grad = _clip_by_norm(grad, clipnorm)
    if clipvalue is not None:
        grad = jnp.clip(grad, -clipvalue, clipvalue)
    return grad
