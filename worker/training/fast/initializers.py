"""Keras' weight initializers drawn with NumPy (eager JAX would compile once per layer shape)."""

from __future__ import annotations

import numpy as np
from scipy.stats import truncnorm

TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2], as Keras corrects for


def draw(name: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A kernel of ``shape`` (fan_in, fan_out) from the named Keras initializer's distribution."""
    fan_in, fan_out = shape
    if name in ("he_normal", "glorot_normal"):
        scale = 2.0 / fan_in if name == "he_normal" else 2.0 / (fan_in + fan_out)
        std = np.sqrt(scale) / TRUNCATED_STD
        values = truncnorm.rvs(-2.0, 2.0, size=shape, random_state=rng) * std
    elif name in ("he_uniform", "glorot_uniform"):
        limit = np.sqrt(6.0 / fan_in if name == "he_uniform" else 6.0 / (fan_in + fan_out))
        values = rng.uniform(-limit, limit, size=shape)
    elif name == "random_normal":
        values = rng.normal(0.0, 0.05, size=shape)  # Keras' RandomNormal defaults
    elif name == "random_uniform":
        values = rng.uniform(-0.05, 0.05, size=shape)  # Keras' RandomUniform defaults
    elif name == "zeros":
        values = np.zeros(shape)
    else:
        raise ValueError(f"unknown initializer {name!r}")
    return values.astype(np.float32)
