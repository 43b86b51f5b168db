"""Independent NumPy references written from the definitions, for the tests.

These loops share no code with ``dwsep_jax``: padding is given explicitly as
``(low, high)`` pairs, layouts are channels-last ``(N, *S, C)``, kernels HWIO.
"""

from __future__ import annotations

import itertools

import numpy as np


def depthwise_ref(x, kernel, strides, dilation, pads):
    """``D[n, y, c*M+m] = sum_i K[i, 0, c*M+m] * X[n, y*s + i*d - p, c]``.

    Args:
      x: ``(N, *S, C)``.
      kernel: ``(*K, 1, C*M)``.
      strides, dilation: per-axis ints.
      pads: per-axis ``(low, high)`` zero padding.
    """
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    nsp = x.ndim - 2
    n, c = x.shape[0], x.shape[-1]
    ksize = kernel.shape[:nsp]
    m = kernel.shape[-1] // c
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_sp = [
        (xp.shape[1 + a] - (ksize[a] - 1) * dilation[a] - 1) // strides[a] + 1
        for a in range(nsp)
    ]
    out = np.zeros((n, *out_sp, c * m))
    for pos in itertools.product(*[range(o) for o in out_sp]):
        for ch in range(c):
            for mm in range(m):
                acc = np.zeros(n)
                for off in itertools.product(*[range(k) for k in ksize]):
                    src = tuple(
                        pos[a] * strides[a] + off[a] * dilation[a] for a in range(nsp)
                    )
                    acc += kernel[(*off, 0, ch * m + mm)] * xp[(slice(None), *src, ch)]
                out[(slice(None), *pos, ch * m + mm)] = acc
    return out


def pointwise_ref(x, kernel, bias=None):
    """``P[n, y, f] = sum_k W[k, f] * X[n, y, k] + b[f]`` by an explicit loop."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    c, f = kernel.shape
    out = np.zeros((*x.shape[:-1], f))
    for ff in range(f):
        for k in range(c):
            out[..., ff] += kernel[k, ff] * x[..., k]
        if bias is not None:
            out[..., ff] += bias[ff]
    return out


def conv_ref(x, kernel, strides, dilation, pads):
    """Standard convolution with a sum over all input channels."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    nsp = x.ndim - 2
    ksize = kernel.shape[:nsp]
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_sp = [
        (xp.shape[1 + a] - (ksize[a] - 1) * dilation[a] - 1) // strides[a] + 1
        for a in range(nsp)
    ]
    out = np.zeros((x.shape[0], *out_sp, kernel.shape[-1]))
    for off in itertools.product(*[range(k) for k in ksize]):
        idx = tuple(
            slice(
                off[a] * dilation[a],
                off[a] * dilation[a] + (out_sp[a] - 1) * strides[a] + 1,
                strides[a],
            )
            for a in range(nsp)
        )
        window = xp[(slice(None), *idx, slice(None))]
        out += np.tensordot(window, kernel[off], axes=([-1], [0]))
    return out


def tf_same_pads(size, kernel, stride, dilation):
    """TensorFlow 'SAME': output ceil(size/stride), the odd pixel at the end."""
    eff = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return (total // 2, total - total // 2)


NUMPY_PAD_MODES = {"REFLECT": "reflect", "CIRCULAR": "wrap", "EDGE": "edge"}


def pad_input(x, pads, mode="constant"):
    """Pads the spatial axes of a channels-last ``(N, *S, C)`` array."""
    return np.pad(np.asarray(x, np.float64), [(0, 0), *pads, (0, 0)], mode=mode)


def depthwise_ref_vectorized(x, kernel, strides, dilation, pads, mode="constant"):
    """Depthwise conv as a sum over kernel taps, vectorised over positions.

    ``out[n, y, c, m] = sum_i K[i, 0, c*M+m] * Xpad[n, y*s + i*d, c]``, then the
    ``(C, M)`` axes are merged into ``c*M + m``. ``mode`` is a ``numpy.pad`` mode
    for the padding ('constant' pads with zeros).
    """
    xp = pad_input(x, pads, mode)
    kernel = np.asarray(kernel, np.float64)
    nsp = xp.ndim - 2
    c = xp.shape[-1]
    ksize = kernel.shape[:nsp]
    m = kernel.shape[-1] // c
    out_sp = [
        (xp.shape[1 + a] - (ksize[a] - 1) * dilation[a] - 1) // strides[a] + 1
        for a in range(nsp)
    ]
    out = np.zeros((xp.shape[0], *out_sp, c, m))
    for off in itertools.product(*[range(k) for k in ksize]):
        idx = tuple(
            slice(
                off[a] * dilation[a],
                off[a] * dilation[a] + (out_sp[a] - 1) * strides[a] + 1,
                strides[a],
            )
            for a in range(nsp)
        )
        window = xp[(slice(None), *idx, slice(None))]
        out += window[..., None] * kernel[off][0].reshape(c, m)
    return out.reshape((xp.shape[0], *out_sp, c * m))


def grouped_conv_ref(x, kernel, strides, dilation, pads, groups, mode="constant"):
    """Grouped convolution: group ``g`` of the outputs sees group ``g`` of the inputs.

    Args:
      x: ``(N, *S, C)``.
      kernel: ``(*K, C // groups, F)``; output channels are split into ``groups``
        consecutive blocks of ``F // groups``.
    """
    xp = pad_input(x, pads, mode)
    kernel = np.asarray(kernel, np.float64)
    c = xp.shape[-1]
    f = kernel.shape[-1]
    cg, fg = c // groups, f // groups
    parts = []
    for g in range(groups):
        parts.append(
            conv_ref(
                xp[..., g * cg : (g + 1) * cg],
                kernel[..., g * fg : (g + 1) * fg],
                strides,
                dilation,
                [(0, 0)] * (xp.ndim - 2),
            )
        )
    return np.concatenate(parts, axis=-1)
