"""Keras' optimizers (at its default constants) as one elementwise rule over a flat weight vector.

Every member of a population may use a different optimizer. Each rule below is optax's (``optax.adam``,
``nadam``, ``rmsprop``, ``sgd``, ``adagrad``, ``adadelta`` with Keras' constants; the test checks them
against optax step by step), written over one shared state as one formula whose constants are the
member's own, so a program makes one fused pass over the weights whatever its members use. The
optimizer is then a traced number, not part of the compiled program: populations mixing optimizers
share programs, and pay for one update.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Keras uses epsilon 1e-7 everywhere and adds it outside the square root (optax's default differs).
KERAS_EPSILON = 1e-7
OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop", "adagrad", "adadelta")
ADAM_B1, ADAM_B2 = 0.9, 0.999
RMSPROP_RHO = 0.9
ADADELTA_RHO = 0.95
ADAGRAD_START = 0.1  # Keras' initial_accumulator_value


class FamilyState(NamedTuple):
    """What any of the optimizers keeps between steps (each uses the parts it needs)."""

    steps: jax.Array  # steps taken (Adam's bias correction)
    mu: jax.Array  # first moment: adam, nadam
    nu: jax.Array  # mean or sum of squared gradients: adam, nadam, rmsprop, adagrad; adadelta's E[g^2]
    ex: jax.Array  # adadelta's E[dx^2]


def clip_by_norm(grad: jax.Array, max_norm: float | jax.Array) -> jax.Array:
    """One gradient tensor rescaled to at most ``max_norm`` (Keras' clipnorm, per tensor)."""
    norm = jnp.sqrt(jnp.sum(grad * grad))
    return grad * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))


def family_init(weights: jax.Array, which: jax.Array) -> FamilyState:
    """The starting state of optimizer ``OPTIMIZERS[which]`` for a flat weight vector."""
    zeros = jnp.zeros_like(weights)
    start = jnp.where(which == OPTIMIZERS.index("adagrad"), ADAGRAD_START, 0.0)
    return FamilyState(jnp.zeros([], jnp.int32), zeros, jnp.full_like(weights, start), zeros)


def family_update(
    grads: jax.Array, state: FamilyState, which: jax.Array, learning_rate: jax.Array
) -> tuple[jax.Array, FamilyState]:
    """The weight change and next state of optimizer ``OPTIMIZERS[which]`` (clipping done before).

    Every rule is one shape, ``(a * mu + b * g) * r / (e * sqrt(nu + f) + h)`` with the member's own
    scalars (``r``: Adadelta's ``sqrt(ex + eps)``, else 1): two square roots and one division per
    weight, where computing each rule and keeping one took five and three (a third of a deep
    program's step).
    """

    def pick(values: dict[str, float | jax.Array], default: float | jax.Array) -> jax.Array:
        return jnp.select([which == OPTIMIZERS.index(n) for n in values], list(values.values()), default)

    count = state.steps + 1
    b1_t, b1_next = 1 - ADAM_B1**count, 1 - ADAM_B1 ** (count + 1)
    mu = (1 - ADAM_B1) * grads + ADAM_B1 * state.mu
    # The squared-gradient average decays at the member's own rate; Adagrad sums; SGD keeps none.
    rho = pick({"rmsprop": RMSPROP_RHO, "adadelta": ADADELTA_RHO, "adagrad": 1.0, "sgd": 0.0}, ADAM_B2)
    weight = pick({"adagrad": 1.0, "sgd": 0.0}, 1 - rho)
    nu = weight * grads**2 + rho * state.nu
    # Adam's bias corrections; Nadam's look-ahead momentum (optax's nesterov form).
    a = pick({"adam": 1 / b1_t, "nadam": ADAM_B1 / b1_next}, 0.0)
    b = pick({"adam": 0.0, "nadam": (1 - ADAM_B1) / b1_t}, 1.0)
    adadelta = which == OPTIMIZERS.index("adadelta")
    adam_root = 1 / jnp.sqrt(1 - ADAM_B2**count)  # sqrt of Adam's second-moment bias correction
    e = pick({"adam": adam_root, "nadam": adam_root, "sgd": 0.0}, 1.0)
    f = pick({"adagrad": KERAS_EPSILON, "adadelta": KERAS_EPSILON}, 0.0)  # inside the root
    h = pick({"adagrad": 0.0, "adadelta": 0.0, "sgd": 1.0}, KERAS_EPSILON)  # outside it
    root_ex = jnp.sqrt(state.ex + KERAS_EPSILON)
    step = (a * mu + b * grads) * jnp.where(adadelta, root_ex, 1.0) / (e * jnp.sqrt(nu + f) + h)
    ex = jnp.where(adadelta, (1 - ADADELTA_RHO) * step**2 + ADADELTA_RHO * state.ex, state.ex)
    return -learning_rate * step, FamilyState(count, mu, nu, ex)


def applied_gradient(
    grad: jax.Array, *, clipnorm: float | jax.Array | None, clipvalue: float | jax.Array | None
) -> jax.Array:
    """One kernel's gradient as the optimizer applies it (after Keras' clipping), for diagnostics."""
    if clipnorm is not None:
        grad = clip_by_norm(grad, clipnorm)
    if clipvalue is not None:
        grad = jnp.clip(grad, -clipvalue, clipvalue)
    return grad
