"""Every depthwise implementation against the oracles and against each other.

Values are checked against the NumPy loops in ``tests.reference``; gradients
against PyTorch autograd of ``conv{1,2,3}d(groups=C)`` and against JAX's own
transpose rules for ``lax.conv_general_dilated`` (``impl='lax'``). Covered: 1, 2
and 3 spatial axes, strides, dilation, channel multipliers, explicit asymmetric
padding, channels-first, half precision accumulated in float32,
``preferred_element_type``, ``jit``, ``vmap`` over kernels, grad of grad, and
the ``impl`` selection rules.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsep_jax import depthwise_impls, ops
from tests.reference import depthwise_ref

CONCRETE = [name for name in depthwise_impls.IMPL_NAMES if name != "auto"]
FAST = list(depthwise_impls.IMPLS)

# (batch, spatial, channels, multiplier, kernel, strides, dilation, pads,
#  channels_first)
CASES = {
    "1d": (2, (13,), 3, 1, (5,), (1,), (1,), ((2, 2),), False),
    "1d-dilated-stride": (2, (20,), 2, 2, (3,), (2,), (3,), ((1, 4),), False),
    "1d-ncw": (2, (20,), 4, 2, (7,), (1,), (2,), ((0, 0),), True),
    "2d": (2, (7, 8), 3, 1, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), False),
    "2d-stride2-mult3": (
        2,
        (9, 10),
        2,
        3,
        (3, 3),
        (2, 2),
        (1, 1),
        ((0, 1), (1, 1)),
        False,
    ),
    "2d-mixed": (1, (11, 9), 3, 2, (2, 4), (1, 3), (2, 1), ((3, 0), (0, 2)), False),
    "2d-nchw": (2, (8, 7), 3, 2, (3, 2), (2, 1), (1, 2), ((1, 1), (0, 2)), True),
    "3d": (1, (5, 6, 7), 2, 2, (3, 2, 3), (1, 2, 1), (1, 1, 2), ((1, 1),) * 3, False),
    "3d-ncdhw": (
        1,
        (6, 5, 6),
        2,
        1,
        (2, 3, 2),
        (2, 1, 1),
        (1, 2, 1),
        ((0, 1),) * 3,
        True,
    ),
}


def _layout(num_spatial, channels_first):
    if channels_first:
        return {1: "NCW", 2: "NCHW", 3: "NCDHW"}[num_spatial]
    return {1: "NWC", 2: "NHWC", 3: "NDHWC"}[num_spatial]


def _case_arrays(case, seed=0, dtype=np.float32):
    n, spatial, c, m, k, s, d, pads, cf = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *spatial, c)).astype(dtype)
    w = rng.normal(size=(*k, 1, c * m)).astype(dtype)
    if cf:
        x = np.moveaxis(x, -1, 1)
    return x, w


def _apply(impl, case, x, w, **kw):
    _, spatial, _, _, _, s, d, pads, cf = case
    return ops.depthwise_conv(
        x,
        w,
        strides=s,
        dilation=d,
        padding=pads,
        data_format=_layout(len(spatial), cf),
        impl=impl,
        **kw,
    )


def _reference(case, x, w):
    _, _, _, _, _, s, d, pads, cf = case
    if cf:
        x = np.moveaxis(x, 1, -1)
    out = depthwise_ref(x, w, s, d, pads)
    return np.moveaxis(out, -1, 1) if cf else out


def _cotangent(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _grads(impl, case, x, w, g):
    def loss(x, w):
        return jnp.sum(_apply(impl, case, x, w).astype(jnp.float32) * g)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)


def _torch_grads(case, x, w, g):
    torch = pytest.importorskip("torch")
    _, spatial, c, _, _, s, d, pads, cf = case
    nsp = len(spatial)
    xt = np.moveaxis(x, 1, -1) if cf else x
    xt = np.pad(xt, [(0, 0), *pads, (0, 0)])
    xt = torch.tensor(np.moveaxis(xt, -1, 1).copy(), requires_grad=True)
    wt = torch.tensor(np.moveaxis(w[..., 0, :], -1, 0)[:, None].copy())
    wt.requires_grad_(True)
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}.get(
        nsp, torch.nn.functional.conv3d
    )
    y = conv(xt, wt, stride=s, dilation=d, groups=c)
    gt = g if cf else np.moveaxis(g, -1, 1)
    y.backward(torch.tensor(np.ascontiguousarray(gt)))
    gx = np.moveaxis(xt.grad.numpy(), 1, -1)
    crop = tuple(slice(lo, gx.shape[1 + a] - hi) for a, (lo, hi) in enumerate(pads))
    gx = gx[(slice(None), *crop, slice(None))]
    if cf:
        gx = np.moveaxis(gx, -1, 1)
    gw = np.moveaxis(wt.grad.numpy()[:, 0], 0, -1)[..., None, :]
    return gx, gw


@pytest.mark.parametrize("impl", CONCRETE)
@pytest.mark.parametrize("name", list(CASES))
def test_values_match_numpy_loop(impl, name):
    case = CASES[name]
    x, w = _case_arrays(case)
    got = jax.jit(lambda x, w: _apply(impl, case, x, w))(x, w)
    np.testing.assert_allclose(np.asarray(got), _reference(case, x, w), atol=2e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_match_torch_and_each_other(name):
    case = CASES[name]
    x, w = _case_arrays(case)
    g = _cotangent(_reference(case, x, w).shape)
    want_x, want_w = _torch_grads(case, x, w, g)
    for impl in CONCRETE:
        gx, gw = _grads(impl, case, x, w, g)
        np.testing.assert_allclose(np.asarray(gx), want_x, atol=1e-4, err_msg=impl)
        np.testing.assert_allclose(np.asarray(gw), want_w, atol=1e-4, err_msg=impl)


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("name", ["1d-dilated-stride", "2d-nchw", "3d"])
def test_grad_of_grad_matches_lax(impl, name):
    case = CASES[name]
    x, w = _case_arrays(case)
    g = _cotangent(_reference(case, x, w).shape)

    def outer(impl):
        def loss(x, w):
            return jnp.sum(_apply(impl, case, x, w) * g)

        def inner(x, w):
            gx, gw = jax.grad(loss, argnums=(0, 1))(x, w)
            return jnp.sum(jnp.sin(gx)) + jnp.sum(gw**2)

        return jax.jit(jax.grad(inner, argnums=(0, 1)))(x, w)

    for got, want in zip(outer(impl), outer("lax")):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-4)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("impl", FAST)
def test_half_precision_accumulates_in_float32(impl, dtype):
    case = CASES["2d-stride2-mult3"]
    x32, w32 = _case_arrays(case)
    x, w = jnp.asarray(x32, dtype), jnp.asarray(w32, dtype)
    g = _cotangent(_reference(case, x32, w32).shape)
    want = _reference(case, np.asarray(x, np.float32), np.asarray(w, np.float32))

    y = _apply(impl, case, x, w)
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y, np.float32), want, rtol=2e-2, atol=2e-2)

    y32 = _apply(impl, case, x, w, preferred_element_type=jnp.float32)
    assert y32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y32), want, rtol=1e-5, atol=1e-5)

    gx, gw = _grads(impl, case, x, w, g)
    assert gx.dtype == dtype and gw.dtype == dtype
    want_x, want_w = _grads(
        "lax", case, np.asarray(x, np.float32), np.asarray(w, np.float32), g
    )
    np.testing.assert_allclose(np.asarray(gx, np.float32), want_x, rtol=2e-2, atol=3e-2)
    np.testing.assert_allclose(np.asarray(gw, np.float32), want_w, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("impl", FAST)
def test_vmap_over_kernels_matches_loop(impl):
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(4, 6, 7, 8)).astype(np.float32)
    ws = rng.normal(size=(4, 3, 3, 1, 8)).astype(np.float32)

    def loss(w, x, impl=impl):
        y = ops.depthwise_conv(x, w, strides=2, impl=impl)
        return jnp.sum(jnp.tanh(y))

    got_y = jax.vmap(lambda x, w: ops.depthwise_conv(x, w, strides=2, impl=impl))(
        xs, ws
    )
    got_g = jax.vmap(jax.grad(loss))(ws, xs)
    for i in range(4):
        want_y = ops.depthwise_conv(xs[i], ws[i], strides=2, impl="lax")
        want_g = jax.grad(loss)(ws[i], xs[i], "lax")
        np.testing.assert_allclose(np.asarray(got_y[i]), np.asarray(want_y), atol=1e-5)
        np.testing.assert_allclose(np.asarray(got_g[i]), np.asarray(want_g), atol=1e-4)


def test_shift_supports_forward_mode_and_shift_vjp_says_it_does_not():
    case = CASES["2d-mixed"]
    x, w = _case_arrays(case)
    tx, tw = _case_arrays(case, seed=5)

    def run(impl):
        return jax.jvp(lambda x, w: _apply(impl, case, x, w), (x, w), (tx, tw))

    for got, want in zip(run("shift"), run("lax")):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4)
    with pytest.raises(TypeError, match="custom_vjp"):
        run("shift_vjp")


def test_registry_and_auto_selection():
    assert set(depthwise_impls.IMPL_NAMES) == {"auto", "lax", *FAST}
    assert FAST == ["shift", "shift_vjp"]
    geom, m = ops.depthwise_geometry(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 1, 2)))
    for impl in CONCRETE:
        assert depthwise_impls.resolve_impl(impl, geom, m, None, None) == impl
    expected = "shift_vjp" if jax.default_backend() == "cpu" else "lax"
    assert depthwise_impls.resolve_impl("auto", geom, m, None, None) == expected


@pytest.mark.parametrize("bad", ["fast", "LAX", "", None])
def test_unknown_impl_is_rejected_with_the_choices(bad):
    with pytest.raises(ValueError, match=r"impl=.*expected one of"):
        ops.depthwise_conv(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 1, 2)), impl=bad)


def test_bench_times_every_impl_and_counts_flops():
    from dwsep_jax import bench

    cfg = bench.BenchConfig(
        batches=(1,),
        shapes=((8, 4),),
        dilations_1d=(),
        repeats=2,
        warmup=1,
        min_sample_s=0.0,
        train_step=False,
        torch=False,
        full_impls=False,
    )
    report = bench.run_benchmark(cfg)
    rows = {(t["op"], t["impl"], t["mode"]): t for t in report["timings"]}
    for impl in depthwise_impls.IMPL_NAMES:
        assert ("depthwise", impl, "fwd") in rows
        assert ("depthwise", impl, "fwd+bwd") in rows
    # 1x8x8 pixels, 4 channels, 3x3 taps, 2 FLOPs per multiply-add.
    assert rows[("depthwise", "lax", "fwd")]["flops"] == 2 * 64 * 4 * 9
    assert rows[("standard", "lax", "fwd")]["flops"] == 2 * 64 * 4 * 4 * 9
    assert rows[("separable", "auto", "fwd")]["flops"] == 2 * 64 * 4 * (9 + 4)
    assert all(t["repeats"] == 2 and t["median_ms"] > 0 for t in rows.values())
    table = bench.format_report(report)
    assert "| depthwise | 1x8x8x4 | shift_vjp | fwd+bwd |" in table
    assert report["machine"]["cores"] >= 1


def test_bench_targets_compare_against_the_faster_torch_layout():
    from dwsep_jax import bench

    def row(op, impl, mode, ms, flops=1.0, nbytes=1.0):
        return dict(
            op=op,
            shape="8x56x56x128",
            impl=impl,
            mode=mode,
            median_ms=ms,
            flops=flops,
            bytes=nbytes,
            gbytes_per_s=0.0,
        )

    timings = [
        row("depthwise", "auto", "fwd", 2.0),
        row("depthwise", "torch", "fwd", 8.0),
        row("depthwise", "torch_cl", "fwd", 4.0),
        row("depthwise", "auto", "fwd+bwd", 10.0),
        row("depthwise", "torch_cl", "fwd+bwd", 5.0),
        row("separable", "auto", "fwd", 1.0, flops=1.0),
        row("standard", "lax", "fwd", 5.0, flops=8.0),
    ]
    steps = [
        row("train_step", "separable", "step", 30.0),
        row("train_step", "standard", "step", 100.0),
    ]
    got = {r["target"]: r for r in bench.check_targets(timings, steps, 10.0)}
    assert got["depthwise fwd vs torch"]["value"] == 2.0
    assert got["depthwise fwd vs torch"]["met"]
    assert got["depthwise fwd+bwd vs torch"]["value"] == 0.5
    assert not got["depthwise fwd+bwd vs torch"]["met"]
    # Speed-up 5x against a FLOP ratio of 8x: 0.7 * 8 = 5.6 and C >= 128 needs 6.
    assert got["separable vs standard fwd"]["value"] == 5.0
    assert not got["separable vs standard fwd"]["met"]
    assert got["training step, separable vs standard"]["met"]


def test_bench_cli_rejects_zero_repeats(capsys):
    from dwsep_jax import cli

    assert cli.main(["bench", "--quick", "--repeats", "0"]) == 2
    assert "--repeats=0" in capsys.readouterr().err
