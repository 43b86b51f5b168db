"""Initializers whose fans are computed per channel group.

A grouped kernel ``(*K, C / G, F)`` is ``G`` independent convolutions, each
mapping ``C / G`` input channels to ``F / G`` output channels. Its fans are
those of one group::

    fan_in  = prod(K) * C / G        (inputs that feed one output)
    fan_out = prod(K) * F / G        (outputs that one input feeds)

A depthwise kernel ``(*K, 1, C * M)`` is the case ``G = C``: fan-in ``prod(K)``
and fan-out ``prod(K) * M``, so a 3x3 depthwise kernel over 4 channels with
multiplier 1 has fan-in 9 and fan-out 9. ``jax.nn.initializers`` reads the output
axis as one group ``C * M`` wide and gives fan-out ``prod(K) * C * M`` (36 in that
example); fan-in modes agree, fan-out and fan-avg modes do not. The helpers here
reshape the kernel to ``(*K, C / G, G, F / G)`` and treat ``G`` as a batch axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.nn import initializers

from dwsep_jax import _args

Initializer = Any


def compute_fans(shape: Sequence[int], feature_group_count: int = 1) -> tuple[int, int]:
    """Per-group ``(fan_in, fan_out)`` of a conv kernel ``(*K, C / G, F)``.

    Args:
      shape: kernel shape, spatial axes first, then input channels per group,
        then output channels (HWIO); a depthwise kernel is ``(*K, 1, C * M)``.
      feature_group_count: ``G``; for a depthwise kernel, the input channels
        ``C``.

    Returns:
      ``(prod(K) * C / G, prod(K) * F / G)``.

    >>> compute_fans((3, 3, 1, 4), feature_group_count=4)
    (9, 9)
    """
    shape = tuple(shape)
    groups = _args.check_positive_int(feature_group_count, "feature_group_count")
    if len(shape) < 2:
        raise ValueError(
            f"shape={shape}; expected a kernel (*K, C / G, F) with at least 2 axes."
        )
    if shape[-1] % groups:
        raise ValueError(
            f"feature_group_count={groups} does not divide the {shape[-1]} output "
            f"channels of a kernel of shape {shape}."
        )
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * (shape[-1] // groups)


def grouped_conv_variance_scaling(
    scale: float, mode: str, distribution: str, feature_group_count: int
) -> Initializer:
    """``variance_scaling`` with per-group fans for a kernel ``(*K, C / G, F)``.

    Args:
      scale, mode, distribution: as in ``jax.nn.initializers.variance_scaling``.
      feature_group_count: ``G``, the number of channel groups.

    Returns:
      An initializer ``init(key, shape, dtype)``; its variance is
      ``scale / fan`` with the fans of :func:`compute_fans`.
    """
    groups = _args.check_positive_int(feature_group_count, "feature_group_count")
    base = initializers.variance_scaling(
        scale, mode, distribution, in_axis=-3, out_axis=-1, batch_axis=(-2,)
    )

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32):
        shape = tuple(shape)
        compute_fans(shape, groups)
        *spatial, per_group_in, features = shape
        grouped = base(key, (*spatial, per_group_in, groups, features // groups), dtype)
        return grouped.reshape(shape)

    return init


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
      An initializer ``init(key, shape, dtype)`` for shapes ``(*K, 1, C * M)``,
      with fan-in ``prod(K)`` and fan-out ``prod(K) * M``.
    """
    multiplier = _args.check_positive_int(channel_multiplier, "channel_multiplier")

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32):
        shape = tuple(shape)
        if len(shape) < 3 or shape[-2] != 1 or shape[-1] % multiplier:
            raise ValueError(
                f"shape={shape} is not a depthwise kernel (*K, 1, C * M) for "
                f"channel_multiplier={multiplier}."
            )
        groups = shape[-1] // multiplier
        return grouped_conv_variance_scaling(scale, mode, distribution, groups)(
            key, shape, dtype
        )

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
