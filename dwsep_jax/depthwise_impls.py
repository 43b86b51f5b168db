"""Implementations of the depthwise step, chosen by ``impl=``.

``'lax'`` (grouped ``lax.conv_general_dilated``) lives in :mod:`dwsep_jax.ops`;
the alternatives registered in :data:`IMPLS` each take the flattened ``(N, ...)``
input, the HWIO-like kernel ``(*K, 1, C*M)``, the resolved
:class:`dwsep_jax.ops.ConvGeometry` and explicit zero padding, and returns
``(N, *S', C*M)`` (or channels-first).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax


def depthwise_shift(
    x: jax.Array,
    kernel: jax.Array,
    geom: Any,
    pads: Sequence[tuple[int, int]],
    multiplier: int,
    preferred_element_type: Any = None,
) -> jax.Array:
    """Depthwise conv as ``prod(K)`` strided slices times per-channel weights.

    XLA's grouped convolution is slow on CPU; this formulation is a sum of
    elementwise products that XLA fuses into one loop over the output.
    Half-precision inputs accumulate in float32.
    """
    out_dtype = preferred_element_type or x.dtype
    acc_dtype = jnp.promote_types(out_dtype, jnp.float32)
    n = geom.num_spatial
    first = 2 if geom.channels_first else 1
    widths = [(0, 0)] * x.ndim
    for axis, pair in enumerate(pads):
        widths[first + axis] = pair
    x = jnp.pad(x, widths)
    c, m = geom.channels, multiplier
    k = kernel.reshape((*geom.kernel_size, c, m)).astype(acc_dtype)
    if geom.channels_first:
        x = x[:, :, None] if m > 1 else x
        k_shape = (c, m) + (1,) * n if m > 1 else (c,) + (1,) * n
        spatial_first = first + (1 if m > 1 else 0)
    else:
        x = x[..., None] if m > 1 else x
        k_shape = (c, m) if m > 1 else (c,)
        spatial_first = first
    acc = None
    for idx in itertools.product(*(range(k) for k in geom.kernel_size)):
        start = [0] * x.ndim
        limit = list(x.shape)
        step = [1] * x.ndim
        for axis in range(n):
            a = spatial_first + axis
            start[a] = idx[axis] * geom.dilation[axis]
            limit[a] = start[a] + (geom.out_spatial[axis] - 1) * geom.strides[axis] + 1
            step[a] = geom.strides[axis]
        window = lax.slice(x, start, limit, step).astype(acc_dtype)
        term = window * k[idx].reshape(k_shape)
        acc = term if acc is None else acc + term
    if geom.channels_first and m > 1:
        acc = acc.reshape((acc.shape[0], c * m, *acc.shape[3:]))
    elif m > 1:
        acc = acc.reshape((*acc.shape[:-2], c * m))
    return acc.astype(out_dtype)


#: Non-lax depthwise implementations by name.
IMPLS = {"shift": depthwise_shift}
#: Every accepted ``impl=`` value.
IMPL_NAMES = ("auto", "lax", *IMPLS)


def resolve_impl(
    impl: str, geom: Any, multiplier: int, inputs: Any, kernel: Any
) -> str:
    """Turns ``impl`` into a concrete implementation name.

    ``'auto'`` picks ``'shift'`` on CPU, where XLA's grouped convolution is slow,
    and ``'lax'`` on GPU/TPU.
    """
    del geom, multiplier, inputs, kernel
    if impl not in IMPL_NAMES:
        raise ValueError(f"impl={impl!r}; expected one of {IMPL_NAMES}.")
    if impl != "auto":
        return impl
    return "shift" if jax.default_backend() == "cpu" else "lax"
