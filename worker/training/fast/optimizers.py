"""Keras' optimizers (at its default constants) as one elementwise rule over a flat weight vector.

Every member of a population may use a different optimizer. Each rule below is Keras' own
(``keras.optimizers.Adam``, ``Nadam``, ``RMSprop``, ``SGD``, ``Adagrad``, ``Adadelta``: their
``update_step``; the test steps them against Keras side by side), written over one shared state as one
formula whose constants are the member's own, so a program makes one fused pass over the weights
whatever its members use. The optimizer is then a traced number, not part of the compiled program:
populations mixing optimizers share programs, and pay for one update.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Keras' epsilon for every optimizer; where it goes differs: outside the square root for Adam and
# Nadam, inside it for RMSprop, Adagrad and Adadelta (optax puts RMSprop's outside, and scales Adam's).
KERAS_EPSILON = 1e-7
OPTIMIZERS = ("sgd", "adam", "nadam", "rmsprop", "adagrad", "adadelta")
ADAM_B1, ADAM_B2 = 0.9, 0.999
NADAM_DECAY = 0.96  # Keras' Nadam warms its momentum up: u_t = beta_1 (1 - 0.5 * 0.96^t) (Dozat)
RMSPROP_RHO = 0.9
ADADELTA_RHO = 0.95
ADAGRAD_START = 0.1  # Keras' initial_accumulator_value


class FamilyState(NamedTuple):
    """What any of the optimizers keeps between steps (each uses the parts it needs)."""

    steps: jax.Array  # steps taken (Adam's and Nadam's bias corrections)
    mu: jax.Array  # first moment: adam, nadam
    nu: jax.Array  # mean or sum of squared gradients: adam, nadam, rmsprop, adagrad; adadelta's E[g^2]
    ex: jax.Array  # adadelta's E[dx^2]
    u_product: jax.Array  # nadam's product of its momentum schedule u_1 ... u_t


def clip_by_norm(grad: jax.Array, max_norm: float | jax.Array) -> jax.Array:
    """One gradient tensor rescaled to at most ``max_norm`` (Keras' clipnorm, per tensor)."""
    norm = jnp.sqrt(jnp.sum(grad * grad))
    return grad * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))


def family_init(weights: jax.Array, which: jax.Array) -> FamilyState:
    """The starting state of optimizer ``OPTIMIZERS[which]`` for a flat weight vector."""
    zeros = jnp.zeros_like(weights)
    start = jnp.where(which == OPTIMIZERS.index("adagrad"), ADAGRAD_START, 0.0)
    return FamilyState(
        jnp.zeros([], jnp.int32), zeros, jnp.full_like(weights, start), zeros, jnp.ones([], weights.dtype)
    )


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
    t = count.astype(grads.dtype)
    mu = state.mu + (grads - state.mu) * (1 - ADAM_B1)  # Keras' order of operations (same rounding)
    # The squared-gradient average decays at the member's own rate; Adagrad sums; SGD keeps none.
    rho = pick({"rmsprop": RMSPROP_RHO, "adadelta": ADADELTA_RHO, "adagrad": 1.0, "sgd": 0.0}, ADAM_B2)
    weight = pick({"adagrad": 1.0, "sgd": 0.0}, 1 - rho)
    nu = weight * grads**2 + rho * state.nu
    b2_t = 1 - ADAM_B2**t
    # Nadam's momentum schedule this step and next, and its running product (Keras' _u_product).
    u_t, u_next = ADAM_B1 * (1 - 0.5 * NADAM_DECAY**t), ADAM_B1 * (1 - 0.5 * NADAM_DECAY ** (t + 1))
    u_product = state.u_product * u_t
    # Adam: lr sqrt(1 - b2^t) / (1 - b1^t) on m / (sqrt(v) + eps); Nadam: its look-ahead m_hat over
    # sqrt(v / (1 - b2^t)) + eps.
    a = pick({"adam": jnp.sqrt(b2_t) / (1 - ADAM_B1**t), "nadam": u_next / (1 - u_product * u_next)}, 0.0)
    b = pick({"adam": 0.0, "nadam": (1 - u_t) / (1 - u_product)}, 1.0)
    adadelta = which == OPTIMIZERS.index("adadelta")
    e = pick({"nadam": 1 / jnp.sqrt(b2_t), "sgd": 0.0}, 1.0)
    f = pick({"rmsprop": KERAS_EPSILON, "adagrad": KERAS_EPSILON, "adadelta": KERAS_EPSILON}, 0.0)
    h = pick({"adam": KERAS_EPSILON, "nadam": KERAS_EPSILON, "sgd": 1.0}, 0.0)
    root_ex = jnp.sqrt(state.ex + KERAS_EPSILON)
    step = (a * mu + b * grads) * jnp.where(adadelta, root_ex, 1.0) / (e * jnp.sqrt(nu + f) + h)
    ex = jnp.where(adadelta, (1 - ADADELTA_RHO) * step**2 + ADADELTA_RHO * state.ex, state.ex)
    return -learning_rate * step, FamilyState(count, mu, nu, ex, u_product)


def applied_gradient(
    grad: jax.Array, *, clipnorm: float | jax.Array | None, clipvalue: float | jax.Array | None
) -> jax.Array:
    """One kernel's gradient as the optimizer applies it (after Keras' clipping), for diagnostics."""
    if clipnorm is not None:
        grad = clip_by_norm(grad, clipnorm)
    if clipvalue is not None:
        grad = jnp.clip(grad, -clipvalue, clipvalue)
    return grad
