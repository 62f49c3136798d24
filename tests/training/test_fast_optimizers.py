"""The fast engine's one-rule optimizer family steps exactly as optax's optimizers at Keras' constants."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from worker.training.fast.optimizers import KERAS_EPSILON, OPTIMIZERS, family_init, family_update

# Each optimizer as optax builds it with Keras' defaults: the reference the family must match.
OPTAX = {
    "adam": lambda lr: optax.adam(lr, eps=KERAS_EPSILON),
    "nadam": lambda lr: optax.nadam(lr, eps=KERAS_EPSILON),
    "rmsprop": lambda lr: optax.rmsprop(lr, decay=0.9, eps=KERAS_EPSILON, eps_in_sqrt=False),
    "sgd": lambda lr: optax.sgd(lr),
    "adagrad": lambda lr: optax.adagrad(lr, initial_accumulator_value=0.1, eps=KERAS_EPSILON),
    "adadelta": lambda lr: optax.adadelta(lr, rho=0.95, eps=KERAS_EPSILON),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_of_the_family_steps_as_optax_does(name: str) -> None:
    rng = np.random.default_rng(7)
    weights = jnp.asarray(rng.normal(size=257), jnp.float32)
    which, lr = jnp.int32(OPTIMIZERS.index(name)), jnp.float32(0.01)
    reference = OPTAX[name](0.01)
    ours_state, ref_state = family_init(weights, which), reference.init(weights)
    ours_w, ref_w = weights, weights
    for step in range(25):
        # Gradients that change scale and sign, including exact zeros.
        grads = jnp.asarray(rng.normal(size=257) * (10.0 ** (step % 3 - 1)), jnp.float32).at[:5].set(0.0)
        update, ours_state = family_update(grads, ours_state, which, lr)
        ref_update, ref_state = reference.update(grads, ref_state, ref_w)
        ours_w, ref_w = ours_w + update, optax.apply_updates(ref_w, ref_update)
        np.testing.assert_allclose(np.asarray(update), np.asarray(ref_update), rtol=2e-5, atol=1e-9)
    assert not np.allclose(np.asarray(ours_w), np.asarray(weights))  # the weights did move
    np.testing.assert_allclose(np.asarray(ours_w), np.asarray(ref_w), rtol=1e-5, atol=2e-6)


def test_members_with_different_optimizers_step_independently() -> None:
    weights = jnp.ones(4, jnp.float32)
    grads = jnp.asarray([0.5, -1.0, 2.0, 0.0], jnp.float32)
    sgd, adam = jnp.int32(OPTIMIZERS.index("sgd")), jnp.int32(OPTIMIZERS.index("adam"))
    sgd_update, _ = family_update(grads, family_init(weights, sgd), sgd, jnp.float32(0.1))
    adam_update, _ = family_update(grads, family_init(weights, adam), adam, jnp.float32(0.1))
    np.testing.assert_allclose(np.asarray(sgd_update), [-0.05, 0.1, -0.2, 0.0], rtol=1e-6)
    # Adam's first step moves each weight with a nonzero gradient by the learning rate, by sign.
    np.testing.assert_allclose(np.asarray(adam_update), [-0.1, 0.1, -0.1, 0.0], rtol=1e-4, atol=1e-6)
