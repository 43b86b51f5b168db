"""Property tests: random configurations against NumPy and PyTorch oracles.

Each example draws a spatial rank (1, 2 or 3), sizes, kernel sizes, strides,
dilations, a padding spec (strings, ints, per-axis ints or (low, high) pairs),
a channel multiplier, batch axes, a layout and a dtype. The expected padding is
resolved here from the definitions (TensorFlow's 'SAME' split, 'CAUSAL' = all
at the start), independently of ``dwsep_jax._args``. A configuration the
library must reject (an empty output, a fill padding wider than the input) is
checked to raise ``ValueError``; every other one is compared with
``tests.reference`` in float64 and, where installed, with PyTorch's grouped
convolution.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dwsep_jax import depthwise_impls, ops
from tests.reference import (
    NUMPY_PAD_MODES,
    depthwise_ref_vectorized,
    grouped_conv_ref,
    pointwise_ref,
    tf_same_pads,
)

IMPLS = [name for name in depthwise_impls.IMPL_NAMES if name != "auto"]
DTYPES = {
    "float32": (jnp.float32, 1e-5),
    "bfloat16": (jnp.bfloat16, 2.0**-6),
    "float16": (jnp.float16, 2.0**-9),
}
#: float64 runs inside ``jax.enable_x64``, never switched on for the suite.
DTYPES_WITH_X64 = {**DTYPES, "float64": (jnp.float64, 1e-12)}
MAX_SIZE = {1: 12, 2: 8, 3: 5}
LAYOUT_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


def examples(factor: float) -> settings:
    """Scales the active hypothesis profile (see tests/conftest.py) per test."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


def _every_impl(inputs, kernel, bias=None, **kwargs):
    """``depthwise_conv`` with every implementation, compiled as one program."""

    def run(inputs, kernel, bias):
        return [
            ops.depthwise_conv(inputs, kernel, bias, impl=impl, **kwargs)
            for impl in IMPLS
        ]

    return jax.jit(run)(inputs, kernel, bias)


@st.composite
def geometries(draw, max_kernel=4):
    n = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, MAX_SIZE[n])) for _ in range(n))
    ksize = tuple(draw(st.integers(1, max_kernel if n < 3 else 3)) for _ in range(n))
    strides = draw(st.one_of(st.integers(1, 3), st.tuples(*[st.integers(1, 3)] * n)))
    dilation = draw(st.one_of(st.integers(1, 3), st.tuples(*[st.integers(1, 2)] * n)))
    pair = st.tuples(st.integers(0, 3), st.integers(0, 3))
    padding = draw(
        st.one_of(
            st.sampled_from(
                ["SAME", "VALID", "CAUSAL", "REFLECT", "CIRCULAR", "EDGE", "same"]
            ),
            st.integers(0, 3),
            st.tuples(*[st.integers(0, 3)] * n),
            st.tuples(*[pair] * n),
            st.tuples(*[st.one_of(st.integers(0, 2), pair)] * n),
        )
    )
    return spatial, ksize, strides, dilation, padding


def _per_axis(value, n):
    return (value,) * n if isinstance(value, int) else tuple(value)


def expected_padding(padding, spatial, ksize, strides, dilation):
    """Explicit pads and a numpy.pad mode, resolved from the definitions."""
    n = len(spatial)
    eff = [(k - 1) * d + 1 for k, d in zip(ksize, dilation)]
    if isinstance(padding, str):
        key = padding.upper()
        if key == "VALID":
            return [(0, 0)] * n, "constant"
        if key == "CAUSAL":
            return [(e - 1, 0) for e in eff], "constant"
        pads = [tf_same_pads(*a) for a in zip(spatial, ksize, strides, dilation)]
        return pads, NUMPY_PAD_MODES.get(key, "constant")
    if isinstance(padding, int):
        return [(padding, padding)] * n, "constant"
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding], "constant"


def must_reject(spatial, pads, mode, ksize, dilation):
    """True when the library must raise: empty output or an impossible fill."""
    for s, (lo, hi), k, d in zip(spatial, pads, ksize, dilation):
        if s + lo + hi < (k - 1) * d + 1:
            return True
        if mode == "reflect" and max(lo, hi) > s - 1:
            return True
        if mode == "wrap" and max(lo, hi) > s:
            return True
    return False


def _to_layout(x, channels_first):
    """``(N, *S, C)`` to the drawn layout."""
    return np.moveaxis(x, -1, 1) if channels_first else x


def _from_layout(y, channels_first, batch_shape):
    y = np.asarray(y, np.float64)
    y = y.reshape((-1, *y.shape[len(batch_shape) :]))
    return np.moveaxis(y, 1, -1) if channels_first else y


def _inputs_for(x, batch_shape, channels_first):
    x = _to_layout(x, channels_first)
    return x.reshape((*batch_shape, *x.shape[1:]))


def _rounded(rng, shape, dtype):
    """Random values already representable in ``dtype``, as float64."""
    return np.asarray(jnp.asarray(rng.normal(size=shape), dtype), np.float64)


def _assert_close(got, want, tol):
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _torch_depthwise(x, w, strides, dilation, pads, mode, groups):
    """PyTorch grouped conv{1,2,3}d on channels-last float64 arrays."""
    torch = pytest.importorskip("torch")
    n = x.ndim - 2
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
    flat = [p for pair in reversed(pads) for p in pair]
    torch_mode = {"constant": "constant", "reflect": "reflect", "wrap": "circular"}
    torch_mode["edge"] = "replicate"
    if any(flat):
        xt = torch.nn.functional.pad(xt, flat, mode=torch_mode[mode])
    wt = torch.from_numpy(np.ascontiguousarray(np.transpose(w, (n + 1, n, *range(n)))))
    fn = getattr(torch.nn.functional, f"conv{n}d")
    y = fn(xt, wt, stride=strides, dilation=dilation, groups=groups)
    return np.moveaxis(y.numpy(), 1, -1)


@examples(2.5)
@given(
    geom=geometries(),
    channels=st.integers(1, 4),
    multiplier=st.integers(1, 3),
    batch_shape=st.sampled_from([(), (2,), (2, 1)]),
    channels_first=st.booleans(),
    dtype_name=st.sampled_from(sorted(DTYPES_WITH_X64)),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_depthwise_matches_references(
    geom, channels, multiplier, batch_shape, channels_first, dtype_name, use_bias, seed
):
    with jax.enable_x64(dtype_name == "float64"):
        _check_depthwise(
            geom,
            channels,
            multiplier,
            batch_shape,
            channels_first,
            dtype_name,
            use_bias,
            seed,
        )


def _check_depthwise(
    geom, channels, multiplier, batch_shape, channels_first, dtype_name, use_bias, seed
):
    spatial, ksize, strides, dilation, padding = geom
    n = len(spatial)
    strides_t, dilation_t = _per_axis(strides, n), _per_axis(dilation, n)
    pads, mode = expected_padding(padding, spatial, ksize, strides_t, dilation_t)
    dtype, tol = DTYPES_WITH_X64[dtype_name]
    rng = np.random.default_rng(seed)
    batch = int(np.prod(batch_shape))
    x = _rounded(rng, (batch, *spatial, channels), dtype)
    w = _rounded(rng, (*ksize, 1, channels * multiplier), dtype)
    b = _rounded(rng, (channels * multiplier,), dtype) if use_bias else None
    inputs = jnp.asarray(_inputs_for(x, batch_shape, channels_first), dtype)
    kernel = jnp.asarray(w, dtype)
    bias = None if b is None else jnp.asarray(b, dtype)
    kwargs = dict(
        strides=strides,
        dilation=dilation,
        padding=padding,
        data_format=LAYOUT_FIRST[n] if channels_first else None,
        channel_multiplier=multiplier,
    )

    if must_reject(spatial, pads, mode, ksize, dilation_t):
        with pytest.raises(ValueError):
            ops.depthwise_conv(inputs, kernel, bias, **kwargs)
        return

    want = depthwise_ref_vectorized(x, w, strides_t, dilation_t, pads, mode)
    if b is not None:
        want = want + b
    expect_shape = (*batch_shape, *want.shape[1:])
    if channels_first:
        expect_shape = (*batch_shape, want.shape[-1], *want.shape[1:-1])
    for impl, got in zip(IMPLS, _every_impl(inputs, kernel, bias, **kwargs)):
        assert got.dtype == dtype, impl
        assert got.shape == expect_shape, impl
        _assert_close(_from_layout(got, channels_first, batch_shape), want, tol)


@examples(1)
@given(
    geom=geometries(max_kernel=3),
    channels=st.integers(1, 3),
    multiplier=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_depthwise_matches_torch_grouped_conv(geom, channels, multiplier, seed):
    pytest.importorskip("torch")
    spatial, ksize, strides, dilation, padding = geom
    n = len(spatial)
    strides_t, dilation_t = _per_axis(strides, n), _per_axis(dilation, n)
    pads, mode = expected_padding(padding, spatial, ksize, strides_t, dilation_t)
    if must_reject(spatial, pads, mode, ksize, dilation_t):
        return
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *spatial, channels)).astype(np.float32)
    w = rng.normal(size=(*ksize, 1, channels * multiplier)).astype(np.float32)
    want = _torch_depthwise(
        x.astype(np.float64),
        w.astype(np.float64),
        strides_t,
        dilation_t,
        pads,
        mode,
        groups=channels,
    )
    outputs = _every_impl(x, w, strides=strides, dilation=dilation, padding=padding)
    for got in outputs:
        _assert_close(np.asarray(got, np.float64), want, 1e-5)


@examples(1)
@given(
    geom=geometries(max_kernel=3),
    groups=st.integers(1, 3),
    per_group_in=st.integers(1, 2),
    per_group_out=st.integers(1, 2),
    channels_first=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_grouped_conv_matches_references(
    geom, groups, per_group_in, per_group_out, channels_first, seed
):
    spatial, ksize, strides, dilation, padding = geom
    n = len(spatial)
    strides_t, dilation_t = _per_axis(strides, n), _per_axis(dilation, n)
    pads, mode = expected_padding(padding, spatial, ksize, strides_t, dilation_t)
    c, f = groups * per_group_in, groups * per_group_out
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *spatial, c)).astype(np.float32)
    w = rng.normal(size=(*ksize, per_group_in, f)).astype(np.float32)
    kwargs = dict(
        strides=strides,
        dilation=dilation,
        padding=padding,
        feature_group_count=groups,
        data_format=LAYOUT_FIRST[n] if channels_first else None,
    )
    inputs = _to_layout(x, channels_first)
    if must_reject(spatial, pads, mode, ksize, dilation_t):
        with pytest.raises(ValueError):
            ops.conv(inputs, w, **kwargs)
        return
    got = jax.jit(functools.partial(ops.conv, **kwargs))(inputs, w)
    got = _from_layout(got, channels_first, (2,))
    want = grouped_conv_ref(x, w, strides_t, dilation_t, pads, groups, mode)
    _assert_close(got, want, 1e-5)


@examples(0.75)
@given(
    geom=geometries(max_kernel=3),
    channels=st.integers(1, 3),
    multiplier=st.integers(1, 2),
    features=st.integers(1, 4),
    channels_first=st.booleans(),
    dtype_name=st.sampled_from(sorted(DTYPES)),
    intermediate=st.sampled_from([None, "relu"]),
    seed=st.integers(0, 2**16),
)
def test_separable_matches_reference(
    geom,
    channels,
    multiplier,
    features,
    channels_first,
    dtype_name,
    intermediate,
    seed,
):
    spatial, ksize, strides, dilation, padding = geom
    n = len(spatial)
    strides_t, dilation_t = _per_axis(strides, n), _per_axis(dilation, n)
    pads, mode = expected_padding(padding, spatial, ksize, strides_t, dilation_t)
    if must_reject(spatial, pads, mode, ksize, dilation_t):
        return
    dtype, tol = DTYPES[dtype_name]
    rng = np.random.default_rng(seed)
    x = _rounded(rng, (2, *spatial, channels), dtype)
    dw = _rounded(rng, (*ksize, 1, channels * multiplier), dtype)
    db = _rounded(rng, (channels * multiplier,), dtype)
    pw = _rounded(rng, (channels * multiplier, features), dtype)
    pb = _rounded(rng, (features,), dtype)
    fn = functools.partial(
        ops.separable_conv,
        strides=strides,
        dilation=dilation,
        padding=padding,
        intermediate_activation=intermediate,
        activation="tanh",
        data_format="channels_first" if channels_first else None,
    )
    got = jax.jit(fn)(
        jnp.asarray(_to_layout(x, channels_first), dtype),
        jnp.asarray(dw, dtype),
        jnp.asarray(pw, dtype),
        jnp.asarray(pb, dtype),
        depthwise_bias=jnp.asarray(db, dtype),
    )
    assert got.dtype == dtype
    mid = depthwise_ref_vectorized(x, dw, strides_t, dilation_t, pads, mode) + db
    if intermediate == "relu":
        mid = np.maximum(mid, 0.0)
    # The intermediate is rounded to the working dtype between the two steps.
    mid = np.asarray(jnp.asarray(mid, dtype), np.float64)
    want = np.tanh(pointwise_ref(mid, pw, pb))
    _assert_close(_from_layout(got, channels_first, (2,)), want, 2 * tol)
