"""The fast engine's one-rule optimizer family steps exactly as Keras' own optimizers do."""

from __future__ import annotations

import jax.numpy as jnp
import keras
import numpy as np
import pytest

from worker.training.fast.optimizers import OPTIMIZERS, family_init, family_update


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_of_the_family_steps_as_keras_does(name: str) -> None:
    """25 steps side by side with keras.optimizers.get(name): the same update at every step (model.fit's
    optimizer is the reference the fast engine must match, epsilon placement and Nadam's schedule too)."""
    rng = np.random.default_rng(7)
    which, lr = jnp.int32(OPTIMIZERS.index(name)), 0.01
    reference = keras.optimizers.get({"class_name": name, "config": {"learning_rate": lr}})
    # None of these rules reads the weights, so Keras' variable restarts from zero each step and holds
    # exactly that step's update (a difference of two weights would lose its low bits).
    variable = keras.Variable(np.zeros(257, np.float32))
    ours_state = family_init(jnp.zeros(257, jnp.float32), which)
    for step in range(25):
        # Gradients that change scale and sign, including exact zeros and ones far below epsilon's root
        # (where putting epsilon inside or outside the square root changes the step a thousandfold).
        scale = 10.0 ** (step % 4 - 2) if step % 4 else 1e-6
        grads = (rng.normal(size=257) * scale).astype(np.float32)
        grads[:5] = 0.0
        variable.assign(np.zeros(257, np.float32))
        reference.apply_gradients([(keras.ops.convert_to_tensor(grads), variable)])
        update, ours_state = family_update(jnp.asarray(grads), ours_state, which, jnp.float32(lr))
        expected = keras.ops.convert_to_numpy(variable)
        assert np.abs(expected[5:]).min() > 0  # every nonzero gradient moved its weight
        # Float32 rounding differs where a moment nearly cancels, so the tolerance is relative to the
        # step's largest update as well as to each weight's own.
        tolerance = {"rtol": 1e-4, "atol": 1e-4 * np.abs(expected).max()}
        np.testing.assert_allclose(np.asarray(update), expected, **tolerance, err_msg=f"step {step}")


def test_members_with_different_optimizers_step_independently() -> None:
    weights = jnp.ones(4, jnp.float32)
    grads = jnp.asarray([0.5, -1.0, 2.0, 0.0], jnp.float32)
    sgd, adam = jnp.int32(OPTIMIZERS.index("sgd")), jnp.int32(OPTIMIZERS.index("adam"))
    sgd_update, _ = family_update(grads, family_init(weights, sgd), sgd, jnp.float32(0.1))
    adam_update, _ = family_update(grads, family_init(weights, adam), adam, jnp.float32(0.1))
    np.testing.assert_allclose(np.asarray(sgd_update), [-0.05, 0.1, -0.2, 0.0], rtol=1e-6)
    # Adam's first step moves each weight with a nonzero gradient by the learning rate, by sign.
    np.testing.assert_allclose(np.asarray(adam_update), [-0.1, 0.1, -0.1, 0.0], rtol=1e-4, atol=1e-6)
