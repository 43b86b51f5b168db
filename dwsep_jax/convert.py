"""Kernel layout converters between dwsep-jax, PyTorch and Keras.

dwsep-jax keeps every kernel spatial-first (HWIO-like, as ``lax`` and Flax do):

* depthwise ``(*K, 1, C*M)``: output channel ``c*M + m`` is filter ``m`` of input
  channel ``c``;
* pointwise ``(C_in, F)`` (a 1x1 HWIO kernel ``(1, ..., 1, C_in, F)`` is also
  accepted by :func:`dwsep_jax.ops.pointwise_conv`);
* standard/grouped ``(*K, C/G, F)``.

PyTorch stores ``Conv{1,2,3}d`` weights output-first, ``(F, C/G, *K)``; a
depthwise ``Conv2d(C, C*M, K, groups=C)`` holds ``(C*M, 1, K, K)`` with the same
``c*M + m`` channel order. Keras ``DepthwiseConv{1,2}D`` holds ``(*K, C, M)``
and ``SeparableConv`` pointwise kernels are ``(1, ..., 1, C*M, F)``. Each
converter here is a pure transpose/reshape, so converting there and back returns
the kernel exactly.

The converters accept NumPy arrays, JAX arrays, or anything ``numpy.asarray``
understands (a CPU ``torch.Tensor`` after ``.detach()``). JAX arrays stay JAX
arrays; everything else comes back as NumPy.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from dwsep_jax import _args

__all__ = [
    "conv_from_torch",
    "conv_to_torch",
    "depthwise_from_keras",
    "depthwise_from_torch",
    "depthwise_to_keras",
    "depthwise_to_torch",
    "pointwise_from_keras",
    "pointwise_from_torch",
    "pointwise_to_keras",
    "pointwise_to_torch",
]


def _as_array(x: Any) -> Any:
    if isinstance(x, jax.Array):
        return x
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_rank(shape: tuple[int, ...], name: str, ranks: tuple, layout: str) -> None:
    if len(shape) not in ranks:
        raise ValueError(
            f"{name} has shape {shape} (rank {len(shape)}); expected rank "
            f"{' or '.join(str(r) for r in ranks)}, laid out as {layout}."
        )


def _check_spatial_rank(num_spatial: Any) -> int:
    value = _args.check_positive_int(num_spatial, "num_spatial")
    if value > 3:
        raise ValueError(f"num_spatial={num_spatial!r}; expected 1, 2 or 3.")
    return value


def conv_from_torch(weight: Any) -> Any:
    """PyTorch ``(F, C/G, *K)`` conv weight to an HWIO-like ``(*K, C/G, F)`` kernel.

    Works for standard, grouped and depthwise weights alike, since both layouts
    keep the same group-major order of output channels.
    """
    w = _as_array(weight)
    _check_rank(tuple(w.shape), "weight", (3, 4, 5), "(F, C/G, *K)")
    n = w.ndim - 2
    return w.transpose((*range(2, 2 + n), 1, 0))


def conv_to_torch(kernel: Any) -> Any:
    """HWIO-like ``(*K, C/G, F)`` kernel to a PyTorch ``(F, C/G, *K)`` weight."""
    k = _as_array(kernel)
    _check_rank(tuple(k.shape), "kernel", (3, 4, 5), "(*K, C/G, F)")
    n = k.ndim - 2
    return k.transpose((n + 1, n, *range(n)))


def depthwise_from_torch(weight: Any) -> Any:
    """PyTorch depthwise weight ``(C*M, 1, *K)`` to ``(*K, 1, C*M)``.

    The weight of ``torch.nn.Conv2d(C, C*M, K, groups=C)``; output channel
    ``c*M + m`` keeps its index.
    """
    shape = tuple(_args.as_numpy_shape(weight))
    _check_rank(shape, "weight", (3, 4, 5), "(C*M, 1, *K)")
    if shape[1] != 1:
        raise ValueError(
            f"weight has shape {shape}; a PyTorch depthwise weight has 1 input "
            "channel per group, (C*M, 1, *K). Use conv_from_torch for grouped "
            "weights."
        )
    return conv_from_torch(weight)


def depthwise_to_torch(kernel: Any) -> Any:
    """``(*K, 1, C*M)`` depthwise kernel to a PyTorch ``(C*M, 1, *K)`` weight."""
    shape = tuple(_args.as_numpy_shape(kernel))
    _check_rank(shape, "kernel", (3, 4, 5), "(*K, 1, C*M)")
    if shape[-2] != 1:
        raise ValueError(
            f"kernel has shape {shape}; expected a depthwise kernel (*K, 1, C*M)."
        )
    return conv_to_torch(kernel)


def depthwise_from_keras(kernel: Any) -> Any:
    """Keras ``DepthwiseConv`` kernel ``(*K, C, M)`` to ``(*K, 1, C*M)``.

    Keras orders output channels as ``c*M + m``, so this is a reshape.
    """
    k = _as_array(kernel)
    _check_rank(tuple(k.shape), "kernel", (3, 4, 5), "(*K, C, M)")
    *ksize, c, m = k.shape
    return k.reshape((*ksize, 1, c * m))


def depthwise_to_keras(kernel: Any, *, channel_multiplier: int) -> Any:
    """``(*K, 1, C*M)`` depthwise kernel to a Keras ``(*K, C, M)`` kernel.

    Args:
      kernel: ``(*K, 1, C*M)``.
      channel_multiplier: ``M`` (Keras ``depth_multiplier``); the last axis is
        split into ``(C, M)``.
    """
    k = _as_array(kernel)
    shape = tuple(k.shape)
    _check_rank(shape, "kernel", (3, 4, 5), "(*K, 1, C*M)")
    m = _args.check_positive_int(channel_multiplier, "channel_multiplier")
    if shape[-2] != 1 or shape[-1] % m:
        raise ValueError(
            f"kernel has shape {shape} and channel_multiplier={m}; expected "
            f"(*K, 1, C*M) with a last axis divisible by {m}."
        )
    return k.reshape((*shape[:-2], shape[-1] // m, m))


def pointwise_from_torch(weight: Any) -> Any:
    """PyTorch 1x1 conv weight ``(F, C_in, 1, ...)`` (or Linear ``(F, C_in)``) to
    ``(C_in, F)``."""
    w = _as_array(weight)
    shape = tuple(w.shape)
    _check_rank(shape, "weight", (2, 3, 4, 5), "(F, C_in) or (F, C_in, 1, ...)")
    if any(k != 1 for k in shape[2:]):
        raise ValueError(
            f"weight has shape {shape}; a pointwise weight has 1x1 spatial axes "
            "(F, C_in, 1, ...)."
        )
    return w.reshape(shape[:2]).T


def pointwise_to_torch(kernel: Any, *, num_spatial: int) -> Any:
    """``(C_in, F)`` pointwise kernel to a PyTorch ``(F, C_in, 1, ...)`` weight.

    Args:
      kernel: ``(C_in, F)``.
      num_spatial: spatial rank of the target ``Conv{1,2,3}d`` (1, 2 or 3).
    """
    k = _as_array(kernel)
    _check_rank(tuple(k.shape), "kernel", (2,), "(C_in, F)")
    n = _check_spatial_rank(num_spatial)
    return k.T.reshape((k.shape[1], k.shape[0]) + (1,) * n)


def pointwise_from_keras(kernel: Any) -> Any:
    """Keras pointwise kernel ``(1, ..., 1, C_in, F)`` to ``(C_in, F)``."""
    k = _as_array(kernel)
    shape = tuple(k.shape)
    _check_rank(shape, "kernel", (3, 4, 5), "(1, ..., 1, C_in, F)")
    if any(s != 1 for s in shape[:-2]):
        raise ValueError(
            f"kernel has shape {shape}; a pointwise kernel has 1x1 spatial axes "
            "(1, ..., 1, C_in, F)."
        )
    return k.reshape(shape[-2:])


def pointwise_to_keras(kernel: Any, *, num_spatial: int) -> Any:
    """``(C_in, F)`` pointwise kernel to a Keras ``(1, ..., 1, C_in, F)`` kernel."""
    k = _as_array(kernel)
    _check_rank(tuple(k.shape), "kernel", (2,), "(C_in, F)")
    n = _check_spatial_rank(num_spatial)
    return k.reshape((1,) * n + tuple(k.shape))
