"""Output shapes, parameter counts and multiply-adds of the functional ops.

Counts are computed from static shapes with the same argument rules as
:mod:`dwsep_jax.ops` (padding strings, per-axis ints, layouts, leading batch
axes), so they describe exactly the call you would make. Multiply-adds (MACs)
count one multiply and one add per kernel tap and exclude the bias, as the
MobileNet paper, Keras and PyTorch profilers do.

XLA's ``cost_analysis()`` counts differently in one respect: it skips the
products that land on zero padding. :attr:`ConvCost.macs_in_bounds` counts
exactly those in-bounds products, and XLA's ``flops`` equal
``2 * macs_in_bounds`` for these convolutions, grouped and depthwise ones
included (measured in ``tests/test_cost.py``). The two counts agree for 'VALID'
and for the fill paddings ('REFLECT', 'CIRCULAR', 'EDGE'), whose padding is
real data.

With ``N`` examples, output spatial sizes ``S'``, kernel size ``K``, input
channels ``C``, multiplier ``M``, output channels ``F`` and groups ``G``:

* depthwise: ``N * prod(S') * C * M * prod(K)`` MACs, ``prod(K) * C * M`` params;
* pointwise: ``N * prod(S) * C_in * F`` MACs, ``C_in * F`` params;
* standard/grouped: ``N * prod(S') * (C / G) * F * prod(K)`` MACs;
* separable / standard = ``M / F + M / prod(K)`` (``1/F + 1/K^2`` for ``M = 1``
  and a square 2-D kernel).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dwsep_jax import _args
from dwsep_jax._args import PaddingLike
from dwsep_jax.ops import ConvGeometry, resolve_geometry

IntOrSeq = int | Sequence[int]

__all__ = [
    "ConvCost",
    "conv_cost",
    "conv_output_shape",
    "depthwise_cost",
    "pointwise_cost",
    "separable_cost",
    "separable_ratio",
]


@dataclasses.dataclass(frozen=True)
class ConvCost:
    """Static cost of one call.

    Attributes:
      output_shape: shape of the result, batch axes included.
      params: number of trainable parameters (kernel and bias).
      macs: multiply-adds of the whole call (every batch axis and every kernel tap
        at every output position), bias excluded.
      macs_in_bounds: the multiply-adds whose input element is not zero padding,
        the count XLA reports.
    """

    output_shape: tuple[int, ...]
    params: int
    macs: int
    macs_in_bounds: int

    @property
    def flops(self) -> int:
        """``2 * macs``."""
        return 2 * self.macs

    @property
    def flops_in_bounds(self) -> int:
        """``2 * macs_in_bounds``, comparable to XLA's ``cost_analysis()['flops']``."""
        return 2 * self.macs_in_bounds


def _kernel_tuple(kernel_size: IntOrSeq, num_spatial: int | None) -> tuple:
    if _args.is_int(kernel_size):
        if num_spatial is None:
            raise ValueError(
                f"kernel_size={kernel_size!r} is an int, so the number of spatial "
                "axes is unknown; give num_spatial or a per-axis tuple."
            )
        n = _args.check_positive_int(num_spatial, "num_spatial")
        if n > 3:
            raise ValueError(f"num_spatial={num_spatial!r}; expected 1, 2 or 3.")
        return _args.to_tuple(kernel_size, n, "kernel_size")
    if not isinstance(kernel_size, Sequence) or isinstance(kernel_size, str):
        raise TypeError(
            f"kernel_size={kernel_size!r} of type {type(kernel_size).__name__}; "
            "expected an int or a sequence of 1, 2 or 3 ints."
        )
    if len(kernel_size) not in (1, 2, 3):
        raise ValueError(
            f"kernel_size={kernel_size!r} has {len(kernel_size)} entries; expected "
            "1, 2 or 3 (one per spatial axis)."
        )
    return _args.to_tuple(tuple(kernel_size), len(kernel_size), "kernel_size")


def _geometry(
    input_shape: Sequence[int],
    kernel_size: IntOrSeq,
    num_spatial: int | None,
    strides: IntOrSeq,
    padding: PaddingLike,
    dilation: IntOrSeq,
    data_format: str | None,
) -> ConvGeometry:
    return resolve_geometry(
        tuple(input_shape),
        _kernel_tuple(kernel_size, num_spatial),
        strides=strides,
        padding=padding,
        dilation=dilation,
        data_format=data_format,
        name="input_shape",
    )


def _in_bounds_taps(geom: ConvGeometry) -> int:
    """Number of (output position, kernel tap) pairs that read a real input element.

    Zero padding is skipped; fill paddings make real data and count in full.
    """
    total = 1
    for axis in range(geom.num_spatial):
        k, s, d = geom.kernel_size[axis], geom.strides[axis], geom.dilation[axis]
        lo, hi = geom.padding[axis]
        size = geom.spatial[axis]
        if geom.pad_mode != "constant":
            size, lo = size + lo + hi, 0
        count = 0
        for tap in range(k):
            # Output positions o with 0 <= o * s + tap * d - lo < size.
            first = max(0, -(-(lo - tap * d) // s))
            last = min(geom.out_spatial[axis] - 1, (size - 1 + lo - tap * d) // s)
            count += max(0, last - first + 1)
        total *= count
    return total


def conv_output_shape(
    input_shape: Sequence[int],
    kernel_size: IntOrSeq,
    features: int,
    *,
    num_spatial: int | None = None,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    data_format: str | None = None,
) -> tuple[int, ...]:
    """Output shape of a convolution with ``features`` output channels.

    Args:
      input_shape: ``(*batch, *S, C)`` or channels-first.
      kernel_size: per-axis ints; an int needs ``num_spatial``.
      features: output channels (``C * M`` for a depthwise conv).
      num_spatial: spatial rank when ``kernel_size`` is an int.
      strides, padding, dilation, data_format: as in
        :func:`dwsep_jax.ops.depthwise_conv`.
    """
    features = _args.check_positive_int(features, "features")
    geom = _geometry(
        input_shape, kernel_size, num_spatial, strides, padding, dilation, data_format
    )
    return geom.output_shape(features)


def depthwise_cost(
    input_shape: Sequence[int],
    kernel_size: IntOrSeq,
    *,
    channel_multiplier: int = 1,
    num_spatial: int | None = None,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    data_format: str | None = None,
    use_bias: bool = False,
) -> ConvCost:
    """Cost of :func:`dwsep_jax.ops.depthwise_conv` with a ``(*K, 1, C*M)`` kernel."""
    m = _args.check_positive_int(channel_multiplier, "channel_multiplier")
    geom = _geometry(
        input_shape, kernel_size, num_spatial, strides, padding, dilation, data_format
    )
    taps = _args.prod(geom.kernel_size)
    features = geom.channels * m
    outputs = _args.prod(geom.batch_shape) * _args.prod(geom.out_spatial)
    batch = _args.prod(geom.batch_shape)
    return ConvCost(
        output_shape=geom.output_shape(features),
        params=taps * features + (features if use_bias else 0),
        macs=outputs * features * taps,
        macs_in_bounds=batch * features * _in_bounds_taps(geom),
    )


def pointwise_cost(
    input_shape: Sequence[int],
    features: int,
    *,
    data_format: str | None = None,
    use_bias: bool = False,
) -> ConvCost:
    """Cost of :func:`dwsep_jax.ops.pointwise_conv` with a ``(C_in, F)`` kernel.

    Args:
      input_shape: ``(..., C_in)`` channels-last, or with an explicit
        channels-first layout (``'NCW'``, ``'NCHW'``, ``'NCDHW'``)
        ``(*batch, C_in, *S)``.
      features: output channels ``F``.
      data_format: layout of ``input_shape``.
      use_bias: count an ``(F,)`` bias.
    """
    features = _args.check_positive_int(features, "features")
    shape = tuple(input_shape)
    if data_format in (None, "channels_last"):
        num_spatial = max(1, min(3, len(shape) - 2))
    elif isinstance(data_format, str) and 3 <= len(data_format) <= 5:
        num_spatial = len(data_format) - 2
    else:
        raise ValueError(
            f"data_format={data_format!r}; expected 'channels_last' or an explicit "
            "layout such as 'NHWC' or 'NCHW'."
        )
    geom = resolve_geometry(
        shape,
        (1,) * num_spatial,
        padding="VALID",
        data_format=data_format,
        name="input_shape",
    )
    positions = _args.prod(geom.batch_shape) * _args.prod(geom.spatial)
    macs = positions * geom.channels * features
    return ConvCost(
        output_shape=geom.output_shape(features),
        params=geom.channels * features + (features if use_bias else 0),
        macs=macs,
        macs_in_bounds=macs,
    )


def separable_cost(
    input_shape: Sequence[int],
    kernel_size: IntOrSeq,
    features: int,
    *,
    channel_multiplier: int = 1,
    num_spatial: int | None = None,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    data_format: str | None = None,
    use_bias: bool = False,
    depthwise_use_bias: bool = False,
) -> ConvCost:
    """Cost of :func:`dwsep_jax.ops.separable_conv`: depthwise plus pointwise."""
    dw = depthwise_cost(
        input_shape,
        kernel_size,
        channel_multiplier=channel_multiplier,
        num_spatial=num_spatial,
        strides=strides,
        padding=padding,
        dilation=dilation,
        data_format=data_format,
        use_bias=depthwise_use_bias,
    )
    layout = data_format
    if data_format == "channels_first":
        n = len(_kernel_tuple(kernel_size, num_spatial))
        layout = _args.layout_strings(n, True)[0]
    pw = pointwise_cost(
        dw.output_shape, features, data_format=layout, use_bias=use_bias
    )
    return ConvCost(
        output_shape=pw.output_shape,
        params=dw.params + pw.params,
        macs=dw.macs + pw.macs,
        macs_in_bounds=dw.macs_in_bounds + pw.macs_in_bounds,
    )


def conv_cost(
    input_shape: Sequence[int],
    kernel_size: IntOrSeq,
    features: int,
    *,
    feature_group_count: int = 1,
    num_spatial: int | None = None,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    data_format: str | None = None,
    use_bias: bool = False,
) -> ConvCost:
    """Cost of :func:`dwsep_jax.ops.conv` with a ``(*K, C/G, F)`` kernel."""
    features = _args.check_positive_int(features, "features")
    groups = _args.check_positive_int(feature_group_count, "feature_group_count")
    geom = _geometry(
        input_shape, kernel_size, num_spatial, strides, padding, dilation, data_format
    )
    if geom.channels % groups or features % groups:
        raise ValueError(
            f"feature_group_count={groups} must divide the input channels "
            f"({geom.channels}) and features ({features})."
        )
    taps = _args.prod(geom.kernel_size)
    per_output = taps * (geom.channels // groups)
    outputs = _args.prod(geom.batch_shape) * _args.prod(geom.out_spatial)
    batch = _args.prod(geom.batch_shape)
    return ConvCost(
        output_shape=geom.output_shape(features),
        params=per_output * features + (features if use_bias else 0),
        macs=outputs * features * per_output,
        macs_in_bounds=batch
        * features
        * (geom.channels // groups)
        * _in_bounds_taps(geom),
    )


def separable_ratio(
    kernel_size: IntOrSeq,
    features: int,
    *,
    channel_multiplier: int = 1,
    num_spatial: int | None = None,
) -> float:
    """Multiply-adds of a separable conv over a standard conv of the same shape.

    ``M / F + M / prod(K)``; for ``M = 1`` and a ``K x K`` kernel this is the
    MobileNet paper's ``1/F + 1/K^2``. It holds for any input size and stride,
    since both convolutions produce the same output positions.
    """
    ksize = _kernel_tuple(kernel_size, num_spatial)
    features = _args.check_positive_int(features, "features")
    m = _args.check_positive_int(channel_multiplier, "channel_multiplier")
    return m / features + m / _args.prod(ksize)
