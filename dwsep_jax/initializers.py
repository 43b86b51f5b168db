"""Initializers whose fans are computed per channel group.

A depthwise kernel ``(*K, 1, C * M)`` is ``C`` independent convolutions, each with
``prod(K)`` inputs and ``prod(K) * M`` outputs. ``jax.nn.initializers`` would read
its output axis as ``C * M`` wide and give a fan-out ``C`` times too large; these
helpers reshape to ``(*K, 1, C, M)`` and treat ``C`` as a batch axis, so a 3x3
depthwise kernel with multiplier 1 has fan-in 9 and fan-out 9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.nn import initializers

Initializer = Any


def grouped_variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    channel_multiplier: int,
) -> Initializer:
    """``variance_scaling`` for a depthwise kernel ``(*K, 1, C * M)``.

    Args:
      scale, mode, distribution: as in ``jax.nn.initializers.variance_scaling``.
      channel_multiplier: ``M``, filters per input channel.

    Returns:
      An initializer ``init(key, shape, dtype)`` for shapes ``(*K, 1, C * M)``.
    """
    base = initializers.variance_scaling(
        scale, mode, distribution, in_axis=-3, out_axis=-1, batch_axis=(-2,)
    )

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32):
        *spatial, one, cm = shape
        groups = cm // channel_multiplier
        grouped = base(key, (*spatial, one, groups, channel_multiplier), dtype)
        return grouped.reshape(shape)

    return init


def depthwise_lecun_normal(channel_multiplier: int = 1) -> Initializer:
    """LeCun normal (variance ``1 / fan_in``, ``fan_in = prod(K)``), per group."""
    return grouped_variance_scaling(
        1.0, "fan_in", "truncated_normal", channel_multiplier
    )


def depthwise_he_normal(channel_multiplier: int = 1) -> Initializer:
    """He normal (variance ``2 / fan_in``), per group; suits ReLU networks."""
    return grouped_variance_scaling(
        2.0, "fan_in", "truncated_normal", channel_multiplier
    )


def depthwise_glorot_uniform(channel_multiplier: int = 1) -> Initializer:
    """Glorot uniform with per-group fans ``prod(K)`` and ``prod(K) * M``."""
    return grouped_variance_scaling(1.0, "fan_avg", "uniform", channel_multiplier)
