"""The fast engine's dropout masks: each unit kept with probability 1 - rate, reproducible from the key,
different for every key."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from worker.training.fast.masks import keep_mask


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_each_unit_is_kept_with_probability_one_minus_the_rate(rate: float) -> None:
    kept = np.asarray(keep_mask(jax.random.key(3), jnp.float32(rate), (64, 32, 128)))
    # 262,144 draws: a binomial's standard deviation is under 0.001 of them.
    assert abs(kept.mean() - (1 - rate)) < 0.005


def test_masks_repeat_for_a_key_and_differ_between_keys_and_neighbours() -> None:
    key = jax.random.key_data(jax.random.key(7))  # the raw key data the training loop carries
    one = np.asarray(keep_mask(key, jnp.float32(0.5), (32, 128)))
    assert (one == np.asarray(keep_mask(key, jnp.float32(0.5), (32, 128)))).all()
    other = np.asarray(keep_mask(jax.random.fold_in(key, 1), jnp.float32(0.5), (32, 128)))
    assert abs((one == other).mean() - 0.5) < 0.05  # unrelated, not shifted copies
    neighbours = np.corrcoef(one[:, :-1].ravel(), one[:, 1:].ravel())[0, 1]
    assert abs(neighbours) < 0.05


def test_a_units_draw_does_not_depend_on_how_wide_the_program_is_padded() -> None:
    key = jax.random.key_data(jax.random.key(11))
    narrow = np.asarray(keep_mask(key, jnp.float32(0.3), (32, 64)))
    wide = np.asarray(keep_mask(key, jnp.float32(0.3), (32, 128)))
    assert (wide[:, :64] == narrow).all()
