"""Benchmark of the depthwise, pointwise, separable and standard convolutions.

Everything is timed in one process and interleaved: every case of a shape group
is compiled and warmed up first, then the cases take turns, one sample each per
round, so that load from other processes spreads over all of them instead of
landing on one. Each sample repeats a call until it has run for at least
``min_sample_s`` and divides; the tables give the median over the rounds and
the 10th-90th percentile spread.

What is measured (float32, 'SAME' padding, stride 1, channels-last unless said):

* depthwise ``K x K`` (``ops.depthwise_conv``) with every ``impl``, and PyTorch
  ``conv2d(groups=C)`` in NCHW and channels-last memory formats;
* pointwise ``C -> C`` (``ops.pointwise_conv``) with every ``impl``, and a PyTorch
  1x1 ``conv2d``;
* separable (depthwise then pointwise, ``ops.separable_conv``) against the
  standard ``K x K`` conv ``C -> C`` (``ops.conv``) it replaces, and the same in
  PyTorch;
* each forward, and forward plus backward (the VJP for a fixed cotangent, both
  the input and the kernel gradients), like ``y.backward(g)`` in PyTorch;
* on the MobileNet shapes 112x112x32, 56x56x128, 28x28x256, 14x14x512 and
  7x7x1024 at batch 8 and 32, a 1-D case (batch 32, length 1024, 64 channels,
  kernel 5) and the same with dilation 2, 4 and 8;
* the copy bandwidth of the machine (XLA ``x + 1`` and NumPy ``copyto`` on
  64 MiB), the ceiling for memory-bound kernels;
* the whole training step of the MNIST comparison (``mobilenet_v1_small``,
  width 0.5, batch 64, 28x28x1, AdamW), separable against standard.

FLOP counts are ``2 x`` multiply-adds; memory traffic is the minimum a kernel
must move: input and output for the forward, plus cotangent, input and input
gradient for the backward (kernels included).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dwsep_jax import depthwise_impls, ops

logger = logging.getLogger(__name__)

#: MobileNetV1 depthwise stages as (resolution, channels).
MOBILENET_SHAPES = ((112, 32), (56, 128), (28, 256), (14, 512), (7, 1024))
#: Activations at least this large count as "large" for the bandwidth target.
LARGE_BYTES = 8 * 2**20


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What to run.

    Attributes:
      batches: batch sizes of the 2-D MobileNet shapes.
      shapes: ``(resolution, channels)`` pairs of the 2-D shapes.
      dilations_1d: dilations of the 1-D depthwise case (1 = undilated).
      ops_1d: ops timed on the undilated 1-D case (the dilated ones time
        depthwise only).
      kernel_size: ``K`` of the 2-D cases.
      repeats: timed rounds per shape group.
      warmup: untimed calls per case before the rounds.
      min_sample_s: each sample repeats a call for at least this long.
      train_step: whether to time the MNIST MobileNet training step.
      torch: whether to time PyTorch alongside (when it is installed).
      full_impls: time separable with every depthwise ``impl`` (else 'auto' only).
    """

    batches: tuple[int, ...] = (8, 32)
    shapes: tuple[tuple[int, int], ...] = MOBILENET_SHAPES
    dilations_1d: tuple[int, ...] = (1, 2, 4, 8)
    ops_1d: tuple[str, ...] = ("depthwise", "pointwise", "separable", "standard")
    kernel_size: int = 3
    repeats: int = 15
    warmup: int = 2
    min_sample_s: float = 0.005
    train_step: bool = True
    torch: bool = True
    full_impls: bool = True


#: Configuration of ``--quick`` (under a minute on 2 cores).
QUICK = BenchConfig(
    batches=(8,),
    shapes=((28, 256),),
    dilations_1d=(1, 8),
    ops_1d=("depthwise",),
    repeats=5,
    warmup=1,
    min_sample_s=0.003,
    full_impls=False,
)


@dataclasses.dataclass
class Case:
    """One timed callable. ``run()`` executes it once and blocks on the result."""

    op: str
    shape: str
    impl: str
    mode: str
    run: Callable[[], Any]
    flops: float
    bytes: float
    samples: list[float] = dataclasses.field(default_factory=list)

    def result(self) -> dict[str, Any]:
        ms = np.asarray(self.samples) * 1e3
        median = float(np.median(ms))
        return {
            "op": self.op,
            "shape": self.shape,
            "impl": self.impl,
            "mode": self.mode,
            "median_ms": median,
            "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)),
            "repeats": len(self.samples),
            "gflops": self.flops / median / 1e6,
            "gbytes_per_s": self.bytes / median / 1e6,
            "flops": self.flops,
            "bytes": self.bytes,
        }


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(torch_module: Any = None) -> dict[str, Any]:
    """CPU model, cores, memory and library versions, for the report."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": model,
        "cores": cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch_module is not None:
        info["torch"] = torch_module.__version__
        info["torch_threads"] = torch_module.get_num_threads()
    return info


def _jaxlib_version() -> str | None:
    try:
        import jaxlib

        return jaxlib.__version__
    except (ImportError, AttributeError):
        return None


def _load_torch(enabled: bool) -> Any:
    if not enabled:
        return None
    # PyTorch's OpenMP workers spin after each call and slowed the JAX case timed
    # next by up to 2x in the interleaved rounds; passive waiting removes that.
    if "torch" in sys.modules:
        if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            logger.warning(
                "torch was imported before the benchmark; its spinning OpenMP "
                "threads may slow the JAX timings (set OMP_WAIT_POLICY=PASSIVE)"
            )
    else:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        logger.info("torch is not installed; timing JAX only")
        return None
    torch.set_num_threads(cpu_count())
    return torch


def _time_once(case: Case, inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        case.run()
    return (time.perf_counter() - start) / inner


def time_interleaved(cases: Sequence[Case], cfg: BenchConfig) -> None:
    """Warms up every case, then fills ``case.samples`` round by round."""
    inners = []
    for case in cases:
        for _ in range(max(cfg.warmup, 1)):
            case.run()
        once = _time_once(case, 1)
        inners.append(max(1, math.ceil(cfg.min_sample_s / max(once, 1e-6))))
    for r in range(cfg.repeats):
        # Rotate the starting case so no case always follows the same neighbour.
        order = list(range(len(cases)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            cases[i].samples.append(_time_once(cases[i], inners[i]))


def copy_bandwidth(cfg: BenchConfig, size_bytes: int = 64 * 2**20) -> dict[str, float]:
    """Read + write bandwidth of a streaming copy, GB/s (median over rounds)."""
    n = size_bytes // 4
    x = jnp.ones((n,), jnp.float32)
    add_one = jax.jit(lambda a: a + 1.0)
    src = np.ones((n,), np.float32)
    dst = np.empty_like(src)
    cases = [
        Case(
            "copy",
            "64MiB",
            "xla",
            "fwd",
            lambda: add_one(x).block_until_ready(),
            0.0,
            2.0 * size_bytes,
        ),
        Case(
            "copy",
            "64MiB",
            "numpy",
            "fwd",
            lambda: np.copyto(dst, src),
            0.0,
            2.0 * size_bytes,
        ),
    ]
    time_interleaved(cases, dataclasses.replace(cfg, min_sample_s=0.02))
    return {c.impl: c.result()["gbytes_per_s"] for c in cases}


def _normal(key: int, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(key)
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _jax_cases(
    op: str,
    label: str,
    impl: str,
    fn: Callable,
    args: Sequence[np.ndarray],
    out_shape: Sequence[int],
    flops_fwd: float,
    bytes_fwd: float,
    bytes_bwd: float,
) -> list[Case]:
    """Forward and forward+backward cases of ``fn(*args)``."""
    dev_args = [jnp.asarray(a) for a in args]
    g = jnp.asarray(_normal(99, out_shape))
    fwd = jax.jit(fn)

    def vjp(*a):
        y, pull = jax.vjp(fn, *a[:-1])
        return y, pull(a[-1])

    fwd_bwd = jax.jit(vjp)
    return [
        Case(
            op,
            label,
            impl,
            "fwd",
            lambda: jax.block_until_ready(fwd(*dev_args)),
            flops_fwd,
            bytes_fwd,
        ),
        Case(
            op,
            label,
            impl,
            "fwd+bwd",
            lambda: jax.block_until_ready(fwd_bwd(*dev_args, g)),
            3 * flops_fwd,
            bytes_fwd + bytes_bwd,
        ),
    ]


def _torch_cases(
    torch: Any,
    op: str,
    label: str,
    impl: str,
    fn: Callable,
    args: Sequence[np.ndarray],
    out_shape: Sequence[int],
    flops_fwd: float,
    bytes_fwd: float,
    bytes_bwd: float,
    channels_last: bool,
) -> list[Case]:
    """PyTorch forward (no grad) and forward + ``backward(g)`` cases.

    ``args`` are NumPy arrays already in PyTorch layout (NC... and OI...).
    """
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}

    def prepare(a: np.ndarray) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(a))
        if channels_last and t.ndim in fmt:
            t = t.contiguous(memory_format=fmt[t.ndim])
        return t

    tensors = [prepare(a) for a in args]
    grads = [t.clone().requires_grad_(True) for t in tensors]
    g = prepare(_normal(99, out_shape))

    def forward() -> None:
        with torch.no_grad():
            fn(*tensors)

    def forward_backward() -> None:
        for t in grads:
            t.grad = None
        fn(*grads).backward(g)

    return [
        Case(op, label, impl, "fwd", forward, flops_fwd, bytes_fwd),
        Case(
            op,
            label,
            impl,
            "fwd+bwd",
            forward_backward,
            3 * flops_fwd,
            bytes_fwd + bytes_bwd,
        ),
    ]


def _conv_group(
    cfg: BenchConfig,
    torch: Any,
    batch: int,
    spatial: tuple[int, ...],
    channels: int,
    kernel: int,
    dilation: int,
    ops_to_run: Sequence[str],
) -> list[Case]:
    """All cases of one input shape ``(batch, *spatial, channels)``."""
    nsp = len(spatial)
    c = f = channels
    label = "x".join(str(s) for s in (batch, *spatial, c))
    if dilation > 1:
        label += f" d={dilation}"
    ksize = (kernel,) * nsp
    x = _normal(0, (batch, *spatial, c))
    w_dw = _normal(1, (*ksize, 1, c), 1 / kernel)
    w_pw = _normal(2, (c, f), 1 / math.sqrt(c))
    w_std = _normal(3, (*ksize, c, f), 1 / math.sqrt(c * kernel**nsp))
    pixels = batch * math.prod(spatial)
    act = 4.0 * pixels * c
    k2 = kernel**nsp
    macs = {
        "depthwise": pixels * c * k2,
        "pointwise": pixels * c * f,
        "separable": pixels * c * (k2 + f),
        "standard": pixels * c * f * k2,
    }
    weights = {
        "depthwise": 4.0 * c * k2,
        "pointwise": 4.0 * c * f,
        "separable": 4.0 * c * (k2 + f),
        "standard": 4.0 * c * f * k2,
    }
    dw_impls = [n for n in depthwise_impls.IMPL_NAMES if n != "auto"]
    sep_impls = ["auto", *dw_impls] if cfg.full_impls else ["auto"]
    out_shape = (batch, *spatial, f)
    cases: list[Case] = []
    for op in ops_to_run:
        # Minimum traffic: input + output (+ weights) forward; cotangent, input,
        # input gradient (+ weight gradient) backward. The separable layer also
        # writes and reads its intermediate once each way.
        extra = 2 * act if op == "separable" else 0.0
        bytes_fwd = 2 * act + weights[op] + extra
        bytes_bwd = 3 * act + weights[op] + extra
        flops = 2.0 * macs[op]
        if op == "depthwise":
            variants = [
                (
                    i,
                    lambda x, w, i=i: ops.depthwise_conv(
                        x, w, dilation=dilation, impl=i
                    ),
                    (x, w_dw),
                )
                for i in ["auto", *dw_impls]
            ]
        elif op == "pointwise":
            variants = [
                (i, lambda x, w, i=i: ops.pointwise_conv(x, w, impl=i), (x, w_pw))
                for i in ops.POINTWISE_IMPLS
            ]
        elif op == "separable":
            variants = [
                (
                    i,
                    lambda x, a, b, i=i: ops.separable_conv(
                        x, a, b, dilation=dilation, impl=i
                    ),
                    (x, w_dw, w_pw),
                )
                for i in sep_impls
            ]
        else:
            variants = [
                ("lax", lambda x, w: ops.conv(x, w, dilation=dilation), (x, w_std))
            ]
        for impl, fn, args in variants:
            cases += _jax_cases(
                op, label, impl, fn, args, out_shape, flops, bytes_fwd, bytes_bwd
            )
        if torch is not None:
            cases += _torch_variants(
                torch,
                op,
                label,
                x,
                w_dw,
                w_pw,
                w_std,
                kernel,
                dilation,
                out_shape,
                flops,
                bytes_fwd,
                bytes_bwd,
            )
    return cases


def _torch_variants(
    torch,
    op,
    label,
    x,
    w_dw,
    w_pw,
    w_std,
    kernel,
    dilation,
    out_shape,
    flops,
    bytes_fwd,
    bytes_bwd,
) -> list[Case]:
    nsp = x.ndim - 2
    conv = {
        1: torch.nn.functional.conv1d,
        2: torch.nn.functional.conv2d,
        3: torch.nn.functional.conv3d,
    }[nsp]
    c = x.shape[-1]
    pad = dilation * (kernel - 1) // 2
    x_t = np.moveaxis(x, -1, 1)
    dw_t = np.moveaxis(w_dw[..., 0, :], -1, 0)[:, None]
    pw_t = w_pw.T.reshape(w_pw.shape[1], c, *(1,) * nsp)
    std_t = np.moveaxis(np.moveaxis(w_std, -1, 0), -1, 1)
    out_t = (out_shape[0], out_shape[-1], *out_shape[1:-1])
    if op == "depthwise":
        fn, args = (
            (lambda x, w: conv(x, w, padding=pad, dilation=dilation, groups=c)),
            (x_t, dw_t),
        )
    elif op == "pointwise":
        fn, args = (lambda x, w: conv(x, w)), (x_t, pw_t)
    elif op == "separable":
        fn, args = (
            (
                lambda x, a, b: conv(
                    conv(x, a, padding=pad, dilation=dilation, groups=c), b
                )
            ),
            (x_t, dw_t, pw_t),
        )
    else:
        fn, args = (
            (lambda x, w: conv(x, w, padding=pad, dilation=dilation)),
            (x_t, std_t),
        )
    layouts = [("torch", False)]
    if nsp >= 2:
        layouts.append(("torch_cl", True))
    cases = []
    for impl, channels_last in layouts:
        cases += _torch_cases(
            torch,
            op,
            label,
            impl,
            fn,
            args,
            out_t,
            flops,
            bytes_fwd,
            bytes_bwd,
            channels_last,
        )
    return cases


def train_step_cases(cfg: BenchConfig) -> list[Case]:
    """The MNIST comparison's training step, separable and standard."""
    import optax

    from dwsep_jax import train
    from dwsep_jax.models import build_model
    from dwsep_jax.summary import model_summary

    batch, shape, classes = 64, (28, 28, 1), 10
    images = jnp.asarray(_normal(0, (batch, *shape)))
    labels = jnp.asarray(np.arange(batch) % classes, jnp.int32)
    key = jax.random.key(0)
    cases = []
    for conv_type in ("separable", "standard"):
        model = build_model(
            "mobilenet_v1_small",
            num_classes=classes,
            width_multiplier=0.5,
            conv_type=conv_type,
        )
        variables = jax.jit(functools.partial(model.init, train=False))(key, images[:1])
        state = train.TrainState.create(
            apply_fn=model.apply,
            params=variables["params"],
            batch_stats=variables.get("batch_stats", {}),
            tx=optax.adamw(1e-3),
        )
        step = jax.jit(train.make_train_step(classes, 0.0))
        macs = model_summary(model, shape).macs

        def run(step=step, state=state):
            jax.block_until_ready(step(state, images, labels, key))

        flops = 3 * 2.0 * batch * macs if macs else 0.0
        cases.append(
            Case("train_step", "mnist b64", conv_type, "step", run, flops, 0.0)
        )
    return cases


def _groups(cfg: BenchConfig) -> list[dict[str, Any]]:
    groups = []
    for batch in cfg.batches:
        for res, c in cfg.shapes:
            groups.append(
                dict(
                    batch=batch,
                    spatial=(res, res),
                    channels=c,
                    kernel=cfg.kernel_size,
                    dilation=1,
                    ops_to_run=("depthwise", "pointwise", "separable", "standard"),
                )
            )
    for d in cfg.dilations_1d:
        run = cfg.ops_1d if d == 1 else ("depthwise",)
        groups.append(
            dict(
                batch=32,
                spatial=(1024,),
                channels=64,
                kernel=5,
                dilation=d,
                ops_to_run=run,
            )
        )
    return groups


def run_benchmark(
    cfg: BenchConfig = BenchConfig(),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Runs every shape group; returns machine info, timings and target checks.

    Args:
      cfg: what to run.
      progress: optional callback given one line per finished group.

    Returns:
      A JSON-ready dict with ``machine``, ``config``, ``copy_gbytes_per_s``,
      ``timings`` (one entry per case), ``train_step`` and ``targets``.
    """
    torch = _load_torch(cfg.torch)
    start = time.perf_counter()
    machine = machine_info(torch)
    copy = copy_bandwidth(cfg)
    ceiling = max(copy.values())
    timings: list[dict[str, Any]] = []
    for spec in _groups(cfg):
        cases = _conv_group(cfg, torch, **spec)
        time_interleaved(cases, cfg)
        timings += [c.result() for c in cases]
        if progress is not None:
            progress(
                f"timed {cases[0].shape} ({len(cases)} cases, "
                f"{time.perf_counter() - start:.0f}s)"
            )
    train_results: list[dict[str, Any]] = []
    if cfg.train_step:
        cases = train_step_cases(cfg)
        time_interleaved(cases, dataclasses.replace(cfg, min_sample_s=0.0))
        train_results = [c.result() for c in cases]
        if progress is not None:
            progress(f"timed the training step ({time.perf_counter() - start:.0f}s)")
    for t in timings:
        t["bandwidth_fraction"] = t["gbytes_per_s"] / ceiling
    return {
        "machine": machine,
        "config": dataclasses.asdict(cfg),
        "copy_gbytes_per_s": copy,
        "timings": timings,
        "train_step": train_results,
        "targets": check_targets(timings, train_results, ceiling),
        "wall_s": time.perf_counter() - start,
    }


def _index(timings: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(t["op"], t["shape"], t["impl"], t["mode"]): t for t in timings}


def _torch_best(idx, op, shape, mode) -> dict[str, Any] | None:
    found = [
        idx[k]
        for k in ((op, shape, "torch", mode), (op, shape, "torch_cl", mode))
        if k in idx
    ]
    return min(found, key=lambda t: t["median_ms"]) if found else None


def check_targets(
    timings: Sequence[dict[str, Any]],
    train_results: Sequence[dict[str, Any]],
    ceiling_gbs: float,
) -> list[dict[str, Any]]:
    """Evaluates the performance targets; one row per target and shape.

    Targets: depthwise forward no slower than PyTorch (``torch_ms / jax_ms >= 1``)
    and forward+backward within 1.5x (``jax_ms / torch_ms <= 1.5``); separable vs
    standard forward speed-up at least 0.7 of the FLOP ratio (and at least 6x for
    ``C >= 128``); depthwise forward traffic at least 40% of the copy bandwidth
    on activations of at least 8 MiB; training step at least 3x faster.
    """
    idx = _index(timings)
    shapes = list(dict.fromkeys(t["shape"] for t in timings))
    rows = []

    def add(target, shape, value, goal, met, detail=""):
        rows.append(
            dict(
                target=target,
                shape=shape,
                value=value,
                goal=goal,
                met=bool(met),
                detail=detail,
            )
        )

    for shape in shapes:
        for mode, limit in (("fwd", 1.0), ("fwd+bwd", 1 / 1.5)):
            ours = idx.get(("depthwise", shape, "auto", mode))
            theirs = _torch_best(idx, "depthwise", shape, mode)
            if ours is None or theirs is None:
                continue
            speed = theirs["median_ms"] / ours["median_ms"]
            goal = ">= 1.00x torch" if mode == "fwd" else ">= 0.67x torch"
            add(
                f"depthwise {mode} vs torch",
                shape,
                speed,
                goal,
                speed >= limit,
                f"{ours['median_ms']:.2f} ms vs {theirs['median_ms']:.2f} ms "
                f"({theirs['impl']})",
            )
        ours = idx.get(("depthwise", shape, "auto", "fwd"))
        if ours is not None and ours["bytes"] >= 2 * LARGE_BYTES:
            frac = ours["gbytes_per_s"] / ceiling_gbs
            add(
                "depthwise fwd bandwidth",
                shape,
                frac,
                ">= 0.40 of copy",
                frac >= 0.4,
                f"{ours['gbytes_per_s']:.1f} of {ceiling_gbs:.1f} GB/s",
            )
        sep = idx.get(("separable", shape, "auto", "fwd"))
        std = idx.get(("standard", shape, "lax", "fwd"))
        if sep is not None and std is not None:
            speedup = std["median_ms"] / sep["median_ms"]
            flop_ratio = std["flops"] / sep["flops"]
            channels = int(shape.split(" ")[0].split("x")[-1])
            goal = 0.7 * flop_ratio
            if channels >= 128:
                goal = max(goal, 6.0)
            add(
                "separable vs standard fwd",
                shape,
                speedup,
                f">= {goal:.2f}x",
                speedup >= goal,
                f"FLOP ratio {flop_ratio:.2f}x, "
                f"{sep['median_ms']:.2f} vs {std['median_ms']:.2f} ms",
            )
    steps = {t["impl"]: t for t in train_results}
    if "separable" in steps and "standard" in steps:
        speedup = steps["standard"]["median_ms"] / steps["separable"]["median_ms"]
        add(
            "training step, separable vs standard",
            "mnist b64",
            speedup,
            ">= 3.00x",
            speedup >= 3.0,
            f"{steps['separable']['median_ms']:.1f} vs "
            f"{steps['standard']['median_ms']:.1f} ms",
        )
    return rows


def format_report(report: dict[str, Any]) -> str:
    """Markdown: machine, copy bandwidth, the timing table and the targets."""
    m = report["machine"]
    lines = [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores usable ({m['platform']})",
        f"- jax {m['jax']} (jaxlib {m['jaxlib']}, backend {m['backend']})"
        + (
            f", torch {m['torch']} ({m['torch_threads']} threads)"
            if "torch" in m
            else ", torch not installed"
        ),
        f"- load average at start: {m['load_average']}",
        "- copy bandwidth (read + write): "
        + ", ".join(
            f"{k} {v:.1f} GB/s" for k, v in report["copy_gbytes_per_s"].items()
        ),
        f"- bench wall time: {report['wall_s']:.0f} s",
        "",
        "## Timings",
        "",
        "Median over interleaved rounds, p10-p90 in brackets. GB/s is the "
        "minimum memory traffic over the time; 'vs torch' is the best PyTorch "
        "layout's time over this row's time (> 1: faster than PyTorch).",
        "",
        "| op | shape | impl | pass | ms (p10-p90) | GFLOP/s | GB/s | vs torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    idx = _index(report["timings"])
    for t in report["timings"]:
        best = _torch_best(idx, t["op"], t["shape"], t["mode"])
        vs = f"{best['median_ms'] / t['median_ms']:.2f}x" if best else "-"
        lines.append(
            f"| {t['op']} | {t['shape']} | {t['impl']} | {t['mode']} | "
            f"{t['median_ms']:.2f} ({t['p10_ms']:.2f}-{t['p90_ms']:.2f}) | "
            f"{t['gflops']:.1f} | {t['gbytes_per_s']:.1f} | {vs} |"
        )
    if report["train_step"]:
        lines += [
            "",
            "## Training step (mobilenet_v1_small, width 0.5, batch 64, "
            "28x28x1, AdamW)",
            "",
            "| model | ms (p10-p90) | GFLOP/s |",
            "|---|---|---|",
        ]
        for t in report["train_step"]:
            lines.append(
                f"| {t['impl']} | {t['median_ms']:.1f} "
                f"({t['p10_ms']:.1f}-{t['p90_ms']:.1f}) | {t['gflops']:.1f} |"
            )
    lines += [
        "",
        "## Targets",
        "",
        "| target | shape | measured | goal | met | detail |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["targets"]:
        lines.append(
            f"| {r['target']} | {r['shape']} | {r['value']:.3f} | {r['goal']} "
            f"| {'yes' if r['met'] else '**no**'} | {r['detail']} |"
        )
    met = sum(r["met"] for r in report["targets"])
    lines += ["", f"{met} of {len(report['targets'])} target checks met."]
    return "\n".join(lines)
