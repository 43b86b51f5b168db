"""Implementations of the depthwise step, chosen by ``impl=``.

``'lax'`` (grouped ``lax.conv_general_dilated``) lives in :mod:`dwsep_jax.ops` and
is the reference and the GPU/TPU path. The alternatives registered in
:data:`IMPLS` each take

* ``x``: the flattened input ``(N, *S, C)`` (or ``(N, C, *S)`` channels-first),
* ``kernel``: the HWIO-like kernel ``(*K, 1, C*M)``,
* ``geom``: the resolved :class:`dwsep_jax.ops.ConvGeometry`,
* ``pads``: explicit zero ``(low, high)`` padding per spatial axis,
* ``multiplier``: the channel multiplier ``M``,
* ``preferred_element_type``: output dtype, or ``None`` for the input dtype,

and return ``(N, *S', C*M)`` (or ``(N, C*M, *S')``).

Both CPU implementations compute the forward pass as a sum of ``prod(K)`` strided
slices of the padded input times per-channel weights, which XLA fuses into one
loop over the output:

* ``'shift'`` leaves the gradients to autodiff. It supports every JAX
  transformation, forward mode (``jvp``, ``jacfwd``, ``hessian``) included, but its
  kernel gradient is ``prod(K)`` separate reductions over ``N * prod(S')``, which
  XLA:CPU runs at about 1 GFLOP/s.
* ``'shift_vjp'`` has a hand-written VJP. The input gradient is the transposed
  conv (stride 1: each tap's cotangent shifted back by an edge ``lax.pad``, all
  taps fused into one loop; stride ``s > 1``: one such sum per phase of the input,
  the ``prod(s)`` phases then interleaved), and the kernel gradient is a single
  variadic ``lax.reduce`` over the last spatial axis that produces all ``prod(K)``
  taps in one pass over the input and the cotangent, followed by a small sum.
  Every backward function is itself a ``custom_vjp`` expressed through the other
  two, so reverse mode nests to any order (``grad`` of ``grad``), and it works
  under ``jit`` and ``vmap``. Forward mode (``jvp``, ``jacfwd``, ``hessian``) is
  not available through a ``custom_vjp``: use ``impl='shift'`` or ``'lax'`` for
  it.

Half-precision inputs accumulate in float32 in both.

Measurements behind ``'auto'`` (2-core Intel Xeon, AVX-512, shared with other
jobs so +-30% noise, jax 0.10.2, float32 NHWC, 3x3 SAME stride 1, median ms over
11-30 interleaved runs; ``dwsep-jax bench`` reproduces them)::

    shape (N, H, W, C)   impl        fwd    fwd+bwd (x and kernel)
    8x112x112x32         lax         68.5   133.9
                         shift        4.0    57.4
                         shift_vjp    4.5    11.0
    8x56x56x128          lax         71.1   297.5
                         shift        2.0    30.3
                         shift_vjp    2.1     9.5
    8x28x28x256          shift        2.7    48.6
                         shift_vjp    2.5     9.7
    8x14x14x512          lax         18.2    81.1
                         shift        0.8     2.7
                         shift_vjp    0.6     1.3
    32x7x7x1024          shift        1.3    24.0
                         shift_vjp    1.8     4.6
    1-D 32x1024x64, K=5  shift        2.8    35.0
                         shift_vjp    2.6     8.2

    kernel gradient alone, 8x56x56x128: autodiff of 'shift' 42-55 ms, one
    variadic reduce over all axes 43-52 ms, over (H, W) 13-47 ms, over W only
    then a small sum 9.5 ms; stacking the taps and using einsum/dot_general
    150-470 ms.

For scale: PyTorch 2.13's channels-last ``conv2d(groups=C)`` (oneDNN) runs the
2-D forward 2-3x faster than ``shift_vjp`` on the same machine (8x28x28x256:
0.57 ms against 1.33 ms), while on the 1-D cases ``shift_vjp`` is 1.2-2.7x
faster forward and 2-7x faster forward + backward than ``conv1d(groups=C)``.

So ``'auto'`` picks ``'shift_vjp'`` on CPU for every shape measured, and
``'lax'`` on GPU and TPU, where cuDNN and the TPU convolution units run grouped
convolutions natively (not measured here: no accelerator was available).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Static description of one depthwise call, hashable for ``custom_vjp``.

    Attributes:
      num_spatial: number of spatial axes.
      channels_first: whether ``x`` is ``(N, C, *S)`` rather than ``(N, *S, C)``.
      channels, multiplier: ``C`` and ``M``.
      kernel_size, strides, dilation: per-axis geometry.
      pads: explicit zero ``(low, high)`` padding per spatial axis.
      in_spatial, out_spatial: unpadded input and output spatial sizes.
      x_dtype, k_dtype, out_dtype, acc_dtype: dtypes of the input, the kernel,
        the output and the accumulation.
    """

    num_spatial: int
    channels_first: bool
    channels: int
    multiplier: int
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    x_dtype: np.dtype
    k_dtype: np.dtype
    out_dtype: np.dtype
    acc_dtype: np.dtype

    @property
    def spatial_axis(self) -> int:
        """First spatial axis of ``x`` and of the grouped arrays."""
        return 2 if self.channels_first else 1

    @property
    def taps(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*(range(k) for k in self.kernel_size)))


def _make_spec(
    x: jax.Array,
    kernel: jax.Array,
    geom: Any,
    pads: Sequence[tuple[int, int]],
    multiplier: int,
    preferred_element_type: Any,
) -> _Spec:
    first = 2 if geom.channels_first else 1
    in_spatial = tuple(x.shape[first : first + geom.num_spatial])
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    out_spatial = tuple(
        (size + lo + hi - (k - 1) * d - 1) // s + 1
        for size, (lo, hi), k, s, d in zip(
            in_spatial, pads, geom.kernel_size, geom.strides, geom.dilation
        )
    )
    out_dtype = np.dtype(preferred_element_type or x.dtype)
    return _Spec(
        num_spatial=geom.num_spatial,
        channels_first=geom.channels_first,
        channels=geom.channels,
        multiplier=multiplier,
        kernel_size=tuple(geom.kernel_size),
        strides=tuple(geom.strides),
        dilation=tuple(geom.dilation),
        pads=pads,
        in_spatial=in_spatial,
        out_spatial=out_spatial,
        x_dtype=np.dtype(x.dtype),
        k_dtype=np.dtype(kernel.dtype),
        out_dtype=out_dtype,
        acc_dtype=np.dtype(jnp.promote_types(out_dtype, jnp.float32)),
    )


def _grouped_shape(spec: _Spec, n: int, spatial: Sequence[int], m: int) -> tuple:
    """Shape with the channel axis split into ``(C, m)``."""
    if spec.channels_first:
        return (n, spec.channels, m, *spatial)
    return (n, *spatial, spec.channels, m)


def _tap_weights(kernel: jax.Array, spec: _Spec) -> jax.Array:
    """Kernel ``(*K, 1, C*M)`` as ``(*K, C, M)``; channels-first adds unit axes."""
    k = kernel.reshape((*spec.kernel_size, spec.channels, spec.multiplier))
    if spec.channels_first:
        k = k.reshape(k.shape + (1,) * spec.num_spatial)
    return k.astype(spec.acc_dtype)


def _windows(x: jax.Array, spec: _Spec) -> Iterator[tuple[tuple[int, ...], jax.Array]]:
    """``(tap, window)`` pairs: each window is the padded input seen by one tap,
    ``(N, *S', C, 1)`` (channels-first ``(N, C, 1, *S')``) in the accumulation dtype.
    """
    first = spec.spatial_axis
    config = [(0, 0, 0)] * x.ndim
    for axis, (lo, hi) in enumerate(spec.pads):
        config[first + axis] = (lo, hi, 0)
    xp = lax.pad(x, jnp.zeros((), x.dtype), config)
    for tap in spec.taps:
        start = [0] * xp.ndim
        limit = list(xp.shape)
        step = [1] * xp.ndim
        for axis in range(spec.num_spatial):
            a = first + axis
            start[a] = tap[axis] * spec.dilation[axis]
            limit[a] = start[a] + (spec.out_spatial[axis] - 1) * spec.strides[axis] + 1
            step[a] = spec.strides[axis]
        window = lax.slice(xp, start, limit, step).astype(spec.acc_dtype)
        yield tap, jnp.expand_dims(window, 2 if spec.channels_first else -1)


def _forward(x: jax.Array, kernel: jax.Array, spec: _Spec) -> jax.Array:
    """``y[n, o, c*M+m] = sum_t k[t, c*M+m] * xpad[n, o*s + t*d, c]``."""
    k = _tap_weights(kernel, spec)
    acc = None
    for tap, window in _windows(x, spec):
        term = window * k[tap]
        acc = term if acc is None else acc + term
    n = x.shape[0]
    features = spec.channels * spec.multiplier
    if spec.channels_first:
        acc = acc.reshape((n, features, *spec.out_spatial))
    else:
        acc = acc.reshape((n, *spec.out_spatial, features))
    return acc.astype(spec.out_dtype)


def _input_grad(g: jax.Array, kernel: jax.Array, spec: _Spec) -> jax.Array:
    """Transposed conv: the gradient of ``<_forward(x, kernel), g>`` in ``x``.

    With stride 1 each tap's contribution ``sum_m g[..., c, m] * k[t, c, m]`` is
    placed back at its input positions by one edge ``lax.pad`` (negative padding
    crops the zero padding of the forward pass); XLA fuses the pads and the sum
    into one loop over the input. With a stride ``s > 1`` the input is split into
    its ``prod(s)`` phases (positions ``a * s + r`` of the padded input for each
    offset ``r``): the taps with ``t * d = r (mod s)`` land on phase ``r`` at
    ``a = o + (t * d - r) / s``, so each phase is a stride-1 sum of shifted slices
    of ``g``, and interleaving the phases gives the padded input's gradient.
    This does ``prod(K)`` products per output position instead of scattering
    every tap over the whole input through interior padding.
    """
    if all(s == 1 for s in spec.strides):
        return _input_grad_stride1(g, kernel, spec)
    return _input_grad_phases(g, kernel, spec)


def _tap_term(g: jax.Array, weight: jax.Array, spec: _Spec) -> jax.Array:
    """``sum_m g[..., c, m] * weight[c, m]`` for grouped ``g``: drops the ``M`` axis."""
    m_axis = 2 if spec.channels_first else g.ndim - 1
    term = None
    for j in range(spec.multiplier):
        part = lax.index_in_dim(g, j, m_axis, keepdims=False) * lax.index_in_dim(
            weight, j, 1, keepdims=False
        )
        term = part if term is None else term + part
    return term


def _input_grad_stride1(g: jax.Array, kernel: jax.Array, spec: _Spec) -> jax.Array:
    n = g.shape[0]
    m = spec.multiplier
    g = g.reshape(_grouped_shape(spec, n, spec.out_spatial, m)).astype(spec.acc_dtype)
    k = _tap_weights(kernel, spec)
    first = spec.spatial_axis
    zero = jnp.zeros((), spec.acc_dtype)
    acc = None
    for tap in spec.taps:
        term = _tap_term(g, k[tap], spec)
        config = [(0, 0, 0)] * term.ndim
        for axis in range(spec.num_spatial):
            lo_pad, hi_pad = spec.pads[axis]
            start = tap[axis] * spec.dilation[axis]
            padded = spec.in_spatial[axis] + lo_pad + hi_pad
            config[first + axis] = (
                start - lo_pad,
                padded - start - spec.out_spatial[axis] - hi_pad,
                0,
            )
        term = lax.pad(term, zero, config)
        acc = term if acc is None else acc + term
    return acc.astype(spec.x_dtype)


def _input_grad_phases(g: jax.Array, kernel: jax.Array, spec: _Spec) -> jax.Array:
    n = g.shape[0]
    m = spec.multiplier
    g = g.reshape(_grouped_shape(spec, n, spec.out_spatial, m)).astype(spec.acc_dtype)
    k = _tap_weights(kernel, spec)
    first = spec.spatial_axis
    # Spatial axes of the grouped ``g`` (channels-first has ``(C, M)`` before them).
    g_first = first + 1 if spec.channels_first else first
    ns = spec.num_spatial
    strides, dilation = spec.strides, spec.dilation
    # Phase length per axis: enough phase positions to cover the input's span
    # ``[lo, lo + size)`` of the padded axis.
    lengths = [
        -(-(lo + size) // s)
        for (lo, _), size, s in zip(spec.pads, spec.in_spatial, strides)
    ]
    # Largest shift (t * d - r) / s over taps, per axis: low padding of ``g``.
    shifts = [
        (kk - 1) * d // s for kk, d, s in zip(spec.kernel_size, dilation, strides)
    ]
    zero = jnp.zeros((), spec.acc_dtype)
    config = [(0, 0, 0)] * g.ndim
    for axis in range(ns):
        high = max(0, lengths[axis] - spec.out_spatial[axis])
        config[g_first + axis] = (shifts[axis], high, 0)
    gp = lax.pad(g, zero, config)
    phase_shape = list(_grouped_shape(spec, n, lengths, 1))
    del phase_shape[2 if spec.channels_first else -1]
    phases = []
    for phase in itertools.product(*(range(s) for s in strides)):
        acc = None
        for tap in spec.taps:
            offsets = [t * d for t, d in zip(tap, dilation)]
            if any(o % s != r for o, s, r in zip(offsets, strides, phase)):
                continue
            start = [0] * gp.ndim
            limit = list(gp.shape)
            for axis in range(ns):
                shift = (offsets[axis] - phase[axis]) // strides[axis]
                start[g_first + axis] = shifts[axis] - shift
                limit[g_first + axis] = start[g_first + axis] + lengths[axis]
            term = _tap_term(lax.slice(gp, start, limit), k[tap], spec)
            acc = term if acc is None else acc + term
        phases.append(jnp.zeros(phase_shape, spec.acc_dtype) if acc is None else acc)
    # (prod(s), N, *A, C) -> (*s, N, *A, C) -> interleave each phase axis after
    # its spatial axis -> (N, *(A * s), C), then crop the forward pass's padding.
    stacked = jnp.stack(phases).reshape((*strides, *phase_shape))
    perm = [ns]
    if spec.channels_first:
        perm.append(ns + 1)
    for axis in range(ns):
        perm += [ns + first + axis, axis]
    if not spec.channels_first:
        perm.append(ns + first + ns)
    full = stacked.transpose(perm).reshape(
        (
            *phase_shape[:first],
            *(a * s for a, s in zip(lengths, strides)),
            *phase_shape[first + ns :],
        )
    )
    start = [0] * full.ndim
    limit = list(full.shape)
    for axis in range(ns):
        lo = spec.pads[axis][0]
        start[first + axis] = lo
        limit[first + axis] = lo + spec.in_spatial[axis]
    return lax.slice(full, start, limit).astype(spec.x_dtype)


def _kernel_grad(x: jax.Array, g: jax.Array, spec: _Spec) -> jax.Array:
    """Gradient of ``<_forward(x, kernel), g>`` in ``kernel``: ``(*K, 1, C*M)``.

    ``dk[t, c*M+m] = sum_{n, o} xpad[n, o*s + t*d, c] * g[n, o, c*M+m]``. One
    variadic ``lax.reduce`` over the last spatial axis computes all taps in a
    single pass over ``x`` and ``g`` (XLA:CPU runs ``prod(K)`` separate
    reductions over every axis 4-6x slower), then a small sum finishes each tap.
    """
    n = g.shape[0]
    m = spec.multiplier
    g = g.reshape(_grouped_shape(spec, n, spec.out_spatial, m)).astype(spec.acc_dtype)
    products = tuple(window * g for _, window in _windows(x, spec))
    last = g.ndim - 1 if spec.channels_first else spec.num_spatial
    zeros = tuple(jnp.zeros((), spec.acc_dtype) for _ in products)
    partial = lax.reduce(
        products,
        zeros,
        lambda a, b: tuple(u + v for u, v in zip(a, b)),
        (last,),
    )
    rest = partial[0].ndim
    summed = (0, *range(3, rest)) if spec.channels_first else tuple(range(rest - 2))
    per_tap = [jnp.sum(p, axis=summed) for p in partial]
    dk = jnp.stack(per_tap).reshape((*spec.kernel_size, 1, spec.channels * m))
    return dk.astype(spec.k_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _conv(spec: _Spec, x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _forward(x, kernel, spec)


def _conv_fwd(spec, x, kernel):
    return _forward(x, kernel, spec), (x, kernel)


def _conv_bwd(spec, res, g):
    x, kernel = res
    return _conv_t(spec, g, kernel), _conv_k(spec, x, g)


_conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _conv_t(spec: _Spec, g: jax.Array, kernel: jax.Array) -> jax.Array:
    return _input_grad(g, kernel, spec)


def _conv_t_fwd(spec, g, kernel):
    return _input_grad(g, kernel, spec), (g, kernel)


def _conv_t_bwd(spec, res, h):
    g, kernel = res
    return _conv(spec, h, kernel), _conv_k(spec, h, g)


_conv_t.defvjp(_conv_t_fwd, _conv_t_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _conv_k(spec: _Spec, x: jax.Array, g: jax.Array) -> jax.Array:
    return _kernel_grad(x, g, spec)


def _conv_k_fwd(spec, x, g):
    return _kernel_grad(x, g, spec), (x, g)


def _conv_k_bwd(spec, res, dk):
    x, g = res
    return _conv_t(spec, g, dk), _conv(spec, x, dk)


_conv_k.defvjp(_conv_k_fwd, _conv_k_bwd)


def depthwise_shift(
    x: jax.Array,
    kernel: jax.Array,
    geom: Any,
    pads: Sequence[tuple[int, int]],
    multiplier: int,
    preferred_element_type: Any = None,
) -> jax.Array:
    """Depthwise conv as ``prod(K)`` strided slices times per-channel weights.

    Gradients come from autodiff, so every transformation (forward mode
    included) works; the kernel gradient is slow on CPU.
    """
    spec = _make_spec(x, kernel, geom, pads, multiplier, preferred_element_type)
    return _forward(x, kernel, spec)


def depthwise_shift_vjp(
    x: jax.Array,
    kernel: jax.Array,
    geom: Any,
    pads: Sequence[tuple[int, int]],
    multiplier: int,
    preferred_element_type: Any = None,
) -> jax.Array:
    """The shifted depthwise conv of :func:`depthwise_shift` with a fast VJP.

    Same values; the input gradient is a fused transposed conv and the kernel
    gradient one variadic reduction over all taps. Reverse mode nests to any
    order; forward mode is not supported (a ``custom_vjp`` limitation).
    """
    spec = _make_spec(x, kernel, geom, pads, multiplier, preferred_element_type)
    return _conv(spec, x, kernel)


#: Non-lax depthwise implementations by name.
IMPLS = {"shift": depthwise_shift, "shift_vjp": depthwise_shift_vjp}
#: Every accepted ``impl=`` value.
IMPL_NAMES = ("auto", "lax", *IMPLS)


#: Largest growth of the input by zero padding for which 'auto' picks a shifted
#: form on CPU; MobileNet layers grow by at most (1 + 2/7)^2 = 1.65x.
_MAX_PAD_GROWTH = 16.0


def resolve_impl(
    impl: str, geom: Any, multiplier: int, inputs: Any, kernel: Any
) -> str:
    """Turns ``impl`` into a concrete implementation name.

    ``'auto'`` picks ``'shift_vjp'`` on CPU, where it was fastest forward and
    backward on every measured shape (table in the module docstring), and
    ``'lax'`` on GPU/TPU.

    Raises:
      ValueError: ``impl`` is not one of :data:`IMPL_NAMES`.
    """
    del multiplier, inputs, kernel
    if impl not in IMPL_NAMES:
        raise ValueError(f"impl={impl!r}; expected one of {IMPL_NAMES}.")
    if impl != "auto":
        return impl
    if jax.default_backend() != "cpu":
        return "lax"
    # The shifted forms materialise the padded input; where the padding dwarfs
    # the input (huge dilation with 'SAME'), the grouped convolution, which
    # never builds it, is the one that fits in memory.
    padded = 1
    for size, (lo, hi) in zip(geom.spatial, geom.padding):
        padded *= (size + lo + hi) / size
    return "shift_vjp" if padded <= _MAX_PAD_GROWTH else "lax"
