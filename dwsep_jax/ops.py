"""Functional depthwise separable convolution in 1, 2 and 3 spatial dimensions.

Notation: input ``I`` with channels ``C`` (channels-last ``(N, *S, C)`` by default,
channels-first ``(N, C, *S)`` through ``data_format``), kernel size ``K`` per axis,
stride ``s``, dilation ``d``, channel multiplier ``M`` and output channels ``F``.

* Depthwise: ``D[n, y, c*M + m] = sum_i Kd[i, 0, c*M + m] * I[n, y*s + i*d - p, c]``.
  Each input channel is convolved with its own ``M`` filters; there is no sum over
  input channels. The kernel is HWIO-like, ``(*K, 1, C*M)``, and the op is
  ``lax.conv_general_dilated`` with ``feature_group_count=C``.
  Cost: ``prod(S') * C * M * prod(K)`` multiply-adds per example.
* Pointwise: ``P[n, y, f] = sum_k Wp[k, f] * D[n, y, k] + b[f]``, a 1x1 conv with
  kernel ``(C_in, F)``. Cost: ``prod(S') * C_in * F``.
* Separable: depthwise then pointwise. Against a standard conv with the same
  ``K`` and ``F`` (cost ``prod(S') * C * F * prod(K)``) the ratio is
  ``1/F + 1/prod(K)`` for ``M = 1``.

Every function takes any number of leading batch axes (including none), checks
its arguments on static shapes before tracing, and is safe under ``jit``,
``vmap`` and ``grad``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from dwsep_jax import _args, depthwise_impls
from dwsep_jax._args import PaddingLike
from dwsep_jax.activations import Activation, get_activation

Array = jax.Array
IntOrSeq = int | Sequence[int]

POINTWISE_IMPLS = ("auto", "dot", "lax")


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Static description of one convolution call, resolved from its arguments.

    Attributes:
      num_spatial: number of spatial axes (1, 2 or 3).
      channels_first: whether the channel axis precedes the spatial axes.
      batch_shape: leading batch axes of the input (may be empty).
      spatial: input spatial sizes.
      channels: input channels ``C``.
      kernel_size, strides, dilation: per-axis geometry.
      padding: explicit ``(low, high)`` pad per spatial axis.
      pad_mode: ``'constant'`` for zeros, else a ``jnp.pad`` mode.
      out_spatial: output spatial sizes.
    """

    num_spatial: int
    channels_first: bool
    batch_shape: tuple[int, ...]
    spatial: tuple[int, ...]
    channels: int
    kernel_size: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    pad_mode: str
    out_spatial: tuple[int, ...]

    @property
    def dimension_numbers(self) -> tuple[str, str, str]:
        return _args.layout_strings(self.num_spatial, self.channels_first)

    @property
    def channel_axis(self) -> int:
        """Channel axis of the flattened ``(N, ...)`` input."""
        return 1 if self.channels_first else self.num_spatial + 1

    def output_shape(self, features: int) -> tuple[int, ...]:
        if self.channels_first:
            return (*self.batch_shape, features, *self.out_spatial)
        return (*self.batch_shape, *self.out_spatial, features)


def _kernel_spatial_rank(kernel: Any, name: str) -> int:
    shape = _args.as_numpy_shape(kernel)
    if len(shape) not in (3, 4, 5):
        raise ValueError(
            f"{name} has shape {shape} (rank {len(shape)}); expected rank 3, 4 or 5: "
            "spatial kernel axes then (in, out), e.g. HWIO (K, K, 1, C*M) for a 2-D "
            "depthwise kernel."
        )
    return len(shape) - 2


def resolve_geometry(
    input_shape: Sequence[int],
    kernel_size: Sequence[int],
    *,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    data_format: str | None = None,
    name: str = "inputs",
) -> ConvGeometry:
    """Validates convolution arguments against an input shape.

    Args:
      input_shape: shape of the input, optional batch axes then the feature axes
        in ``data_format`` order.
      kernel_size: spatial kernel size per axis; its length sets the number of
        spatial dimensions.
      strides, padding, dilation, data_format: as in :func:`depthwise_conv`.
      name: name of the input in error messages.

    Returns:
      The resolved :class:`ConvGeometry`.
    """
    num_spatial = len(kernel_size)
    kernel_size = _args.to_tuple(tuple(kernel_size), num_spatial, "kernel_size")
    channels_first = _args.parse_data_format(data_format, num_spatial)
    batch_shape, spatial, channels = _args.split_input(
        tuple(input_shape), num_spatial, channels_first, name
    )
    if channels < 1:
        raise ValueError(
            f"{name} has shape {tuple(input_shape)} with {channels} channels; "
            "expected at least one channel."
        )
    for axis, size in enumerate(spatial):
        if size < 1:
            raise ValueError(
                f"{name} has shape {tuple(input_shape)}: spatial axis {axis} has size "
                f"{size}; expected every spatial size >= 1."
            )
    strides = _args.to_tuple(strides, num_spatial, "strides")
    dilation = _args.to_tuple(dilation, num_spatial, "dilation")
    pairs, mode = _args.resolve_padding(
        padding, spatial, kernel_size, strides, dilation
    )
    if mode in ("reflect", "wrap"):
        for axis, (size, (lo, hi)) in enumerate(zip(spatial, pairs)):
            limit = size - 1 if mode == "reflect" else size
            if max(lo, hi) > limit:
                raise ValueError(
                    f"padding={padding!r} needs ({lo}, {hi}) on spatial axis {axis} "
                    f"of {name}, which has size {size}; mode {mode!r} can pad at most "
                    f"{limit} per side."
                )
    _args.check_output_not_empty(name, spatial, pairs, kernel_size, dilation)
    out_spatial = tuple(
        _args.output_size(s, p, k, st, d)
        for s, p, k, st, d in zip(spatial, pairs, kernel_size, strides, dilation)
    )
    return ConvGeometry(
        num_spatial=num_spatial,
        channels_first=channels_first,
        batch_shape=batch_shape,
        spatial=spatial,
        channels=channels,
        kernel_size=kernel_size,
        strides=strides,
        dilation=dilation,
        padding=pairs,
        pad_mode=mode,
        out_spatial=out_spatial,
    )


def _flatten_batch(x: Array, geom: ConvGeometry) -> Array:
    feat = x.shape[len(geom.batch_shape) :]
    return x.reshape((_args.prod(geom.batch_shape), *feat))


def _fill_pad(x: Array, geom: ConvGeometry) -> tuple[Array, tuple]:
    """Applies non-zero padding modes explicitly; returns the remaining zero pads."""
    if geom.pad_mode == "constant":
        return x, geom.padding
    widths = [(0, 0)] * x.ndim
    first = 2 if geom.channels_first else 1
    for axis, pair in enumerate(geom.padding):
        widths[first + axis] = pair
    return jnp.pad(x, widths, mode=geom.pad_mode), ((0, 0),) * geom.num_spatial


_HALF_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _compute_dtype(*xs: Any) -> Any:
    return jnp.result_type(*xs)


def _check_preferred_element_type(preferred_element_type: Any) -> None:
    if preferred_element_type is None:
        return
    try:
        dtype = jnp.dtype(preferred_element_type)
    except TypeError as err:
        raise TypeError(
            f"preferred_element_type={preferred_element_type!r} is not a dtype; "
            "expected None or a floating dtype such as jnp.float32."
        ) from err
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"preferred_element_type={preferred_element_type!r}; expected None or a "
            "floating dtype such as jnp.float32."
        )


def _precision_plan(dtype: Any, preferred_element_type: Any) -> tuple[Any, Any]:
    """Returns ``(accumulation dtype passed to XLA, output dtype)``.

    By default the output keeps the dtype of the inputs; bfloat16 and float16
    products are accumulated in float32 and cast back at the end (after bias and
    activation), so long reductions do not lose precision. An explicit
    ``preferred_element_type`` sets both.
    """
    if preferred_element_type is not None:
        out = jnp.dtype(preferred_element_type)
        return out, out
    dtype = jnp.dtype(dtype)
    if dtype in _HALF_DTYPES:
        return jnp.dtype(jnp.float32), dtype
    return None, dtype


def _finish(
    y: Array,
    geom: ConvGeometry,
    features: int,
    bias: Array | None,
    activation: Activation | None,
    out_dtype: Any,
) -> Array:
    y = y.reshape(geom.output_shape(features))
    if bias is not None:
        bias = jnp.asarray(bias)
        if geom.channels_first:
            bias = bias.reshape((features,) + (1,) * geom.num_spatial)
        y = y + bias.astype(y.dtype)
    if activation is not None:
        y = activation(y)
    return y.astype(out_dtype)


def _check_bias(bias: Any, features: int, name: str) -> None:
    if bias is None:
        return
    shape = _args.as_numpy_shape(bias)
    if shape != (features,):
        raise ValueError(
            f"{name} has shape {shape}; expected ({features},), one entry per output "
            "channel."
        )
    _args.check_floating(bias, name)


def _check_multiplier(
    given: Any, depth_multiplier: Any, actual: int, kernel_shape: tuple
) -> None:
    hint = (
        " channel_multiplier is the number of depthwise filters per input channel, "
        "not the width multiplier of a network."
    )
    for name, value in (
        ("channel_multiplier", given),
        ("depth_multiplier", depth_multiplier),
    ):
        if value is None:
            continue
        value = _args.check_positive_int(value, name, hint)
        if value != actual:
            raise ValueError(
                f"{name}={value} does not match the depthwise kernel of shape "
                f"{kernel_shape}, which holds {actual} filters per input channel."
            )


def depthwise_geometry(
    inputs: Any,
    kernel: Any,
    *,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    data_format: str | None = None,
    channel_multiplier: int | None = None,
    depth_multiplier: int | None = None,
) -> tuple[ConvGeometry, int]:
    """Validates depthwise arguments; returns the geometry and the multiplier ``M``."""
    num_spatial = _kernel_spatial_rank(kernel, "kernel")
    kshape = _args.as_numpy_shape(kernel)
    _args.check_floating(inputs, "inputs")
    _args.check_floating(kernel, "kernel")
    geom = resolve_geometry(
        _args.as_numpy_shape(inputs),
        kshape[:num_spatial],
        strides=strides,
        padding=padding,
        dilation=dilation,
        data_format=data_format,
    )
    if kshape[-2] != 1 or kshape[-1] % geom.channels != 0 or kshape[-1] == 0:
        raise ValueError(
            f"kernel has shape {kshape}; a depthwise kernel for inputs with "
            f"{geom.channels} channels must have shape (*kernel_size, 1, "
            f"{geom.channels} * channel_multiplier). Convert PyTorch (C*M, 1, *K) or "
            "Keras (*K, C, M) kernels with dwsep_jax.convert."
        )
    multiplier = kshape[-1] // geom.channels
    _check_multiplier(channel_multiplier, depth_multiplier, multiplier, kshape)
    return geom, multiplier


def _depthwise_lax(x, kernel, geom, pads, precision, preferred_element_type):
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=geom.strides,
        padding=pads,
        rhs_dilation=geom.dilation,
        dimension_numbers=geom.dimension_numbers,
        feature_group_count=geom.channels,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def depthwise_conv(
    inputs: Array,
    kernel: Array,
    bias: Array | None = None,
    *,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    activation: str | Activation | None = None,
    data_format: str | None = None,
    channel_multiplier: int | None = None,
    depth_multiplier: int | None = None,
    precision: lax.PrecisionLike = None,
    preferred_element_type: Any = None,
    impl: str = "auto",
) -> Array:
    """Depthwise convolution: every input channel convolved with its own filters.

    ``D[n, y, c*M + m] = sum_i kernel[i, 0, c*M + m] * inputs[n, y*s + i*d - p, c]``.

    Args:
      inputs: ``(*batch, *S, C)`` channels-last or ``(*batch, C, *S)``
        channels-first, with any number of batch axes (including none) and 1, 2
        or 3 spatial axes ``S``.
      kernel: ``(*K, 1, C * M)`` in HWIO order (``WIO`` / ``DHWIO`` for 1-D /
        3-D); output channel ``c * M + m`` is filter ``m`` of input channel ``c``.
      bias: optional ``(C * M,)`` bias added to the output.
      strides: int or per-axis ints.
      padding: 'SAME' (TensorFlow split, extra at the end), 'VALID', 'CAUSAL'
        (start only), 'REFLECT' / 'CIRCULAR' / 'EDGE' ('SAME' amounts filled from
        the input; reflect pads at most ``S - 1`` per side, circular ``S``), an
        int, per-axis ints or per-axis ``(low, high)`` pairs.
      dilation: kernel dilation, int or per-axis ints.
      activation: optional activation applied after the bias (name or callable).
      data_format: 'channels_last' (default), 'channels_first', or a layout
        string such as 'NHWC' / 'NCHW' / 'NCW' / 'NCDHW'.
      channel_multiplier: optional check: must equal ``M`` of ``kernel``.
      depth_multiplier: Keras name for ``channel_multiplier``.
      precision: passed to ``lax.conv_general_dilated``.
      preferred_element_type: accumulation/output dtype; default keeps the
        promoted dtype of ``inputs`` and ``kernel``.
      impl: 'lax' (grouped ``conv_general_dilated``), one of the CPU
        implementations in :data:`dwsep_jax.depthwise_impls.IMPLS` ('shift',
        'shift_vjp': sums of strided slices; 'shift_vjp' differentiates in
        reverse mode only), or 'auto' (per backend).

    Returns:
      ``(*batch, *S', C * M)`` (or channels-first), with
      ``S' = (S + pad - (K - 1) * d - 1) // s + 1``.

    Cost: ``prod(S') * C * M * prod(K)`` multiply-adds per example.
    """
    geom, multiplier = depthwise_geometry(
        inputs,
        kernel,
        strides=strides,
        padding=padding,
        dilation=dilation,
        data_format=data_format,
        channel_multiplier=channel_multiplier,
        depth_multiplier=depth_multiplier,
    )
    features = geom.channels * multiplier
    _check_bias(bias, features, "bias")
    _check_preferred_element_type(preferred_element_type)
    act = get_activation(activation)
    _args.check_precision(precision)
    impl = depthwise_impls.resolve_impl(impl, geom, multiplier, inputs, kernel)

    dtype = _compute_dtype(inputs, kernel)
    acc_dtype, out_dtype = _precision_plan(dtype, preferred_element_type)
    x = _flatten_batch(jnp.asarray(inputs, dtype), geom)
    x, pads = _fill_pad(x, geom)
    kernel = jnp.asarray(kernel, dtype)
    if impl == "lax":
        y = _depthwise_lax(x, kernel, geom, pads, precision, acc_dtype)
    else:
        y = depthwise_impls.IMPLS[impl](x, kernel, geom, pads, multiplier, acc_dtype)
    return _finish(y, geom, features, bias, act, out_dtype)


def _pointwise_kernel_2d(
    kernel: Any, name: str = "kernel"
) -> tuple[tuple[int, int], int | None]:
    shape = _args.as_numpy_shape(kernel)
    if len(shape) == 2:
        return (shape[0], shape[1]), None
    if len(shape) in (3, 4, 5) and all(k == 1 for k in shape[:-2]):
        return (shape[-2], shape[-1]), len(shape) - 2
    raise ValueError(
        f"{name} has shape {shape}; a pointwise kernel must be (C_in, F) or a 1x1 "
        "HWIO kernel (1, ..., 1, C_in, F). Convert PyTorch (F, C_in, 1, ...) "
        "weights with dwsep_jax.convert.pointwise_from_torch."
    )


def pointwise_conv(
    inputs: Array,
    kernel: Array,
    bias: Array | None = None,
    *,
    activation: str | Activation | None = None,
    data_format: str | None = None,
    precision: lax.PrecisionLike = None,
    preferred_element_type: Any = None,
    impl: str = "auto",
) -> Array:
    """Pointwise (1x1) convolution: ``P[n, y, f] = sum_k kernel[k, f] * x[n, y, k]``.

    Args:
      inputs: ``(*batch, *S, C_in)`` channels-last or, with a channels-first
        ``data_format``, ``(*batch, C_in, *S)``.
      kernel: ``(C_in, F)``, or a 1x1 HWIO kernel ``(1, ..., 1, C_in, F)``.
      bias: optional ``(F,)``.
      activation: optional activation after the bias.
      data_format: 'channels_last' (default) or an explicit channels-first
        layout ('NCW', 'NCHW', 'NCDHW'); 'channels_first' needs a 1x1 HWIO kernel
        so the number of spatial axes is known.
      precision, preferred_element_type: passed to the contraction.
      impl: 'dot' (``dot_general`` over the channel axis), 'lax' (1x1
        ``conv_general_dilated``) or 'auto' ('dot').

    Returns:
      ``(*batch, *S, F)`` (or channels-first). Cost: ``prod(S) * C_in * F``.
    """
    (c_in, features), kernel_spatial = _pointwise_kernel_2d(kernel)
    _args.check_floating(inputs, "inputs")
    _args.check_floating(kernel, "kernel")
    if impl not in POINTWISE_IMPLS:
        raise ValueError(f"impl={impl!r}; expected one of {POINTWISE_IMPLS}.")
    num_spatial = kernel_spatial
    if num_spatial is None:
        if data_format in (None, "channels_last"):
            num_spatial = max(1, min(3, len(_args.as_numpy_shape(inputs)) - 2))
        elif data_format == "channels_first":
            raise ValueError(
                "data_format='channels_first' with a (C_in, F) pointwise kernel is "
                "ambiguous; give an explicit layout such as 'NCHW' or a 1x1 HWIO "
                "kernel."
            )
        elif isinstance(data_format, str) and 3 <= len(data_format) <= 5:
            num_spatial = len(data_format) - 2
        else:
            raise ValueError(
                f"data_format={data_format!r} is not a valid layout; expected "
                "'channels_last', 'channels_first' or one of 'NWC', 'NCW', 'NHWC', "
                "'NCHW', 'NDHWC', 'NCDHW'."
            )
    geom = resolve_geometry(
        _args.as_numpy_shape(inputs),
        (1,) * num_spatial,
        padding="VALID",
        data_format=data_format,
    )
    if geom.channels != c_in:
        raise ValueError(
            f"inputs have {geom.channels} channels but kernel of shape "
            f"{_args.as_numpy_shape(kernel)} expects {c_in} input channels."
        )
    _check_bias(bias, features, "bias")
    _check_preferred_element_type(preferred_element_type)
    act = get_activation(activation)
    _args.check_precision(precision)

    dtype = _compute_dtype(inputs, kernel)
    acc_dtype, out_dtype = _precision_plan(dtype, preferred_element_type)
    x = _flatten_batch(jnp.asarray(inputs, dtype), geom)
    w = jnp.asarray(kernel, dtype).reshape(c_in, features)
    if impl == "lax":
        y = lax.conv_general_dilated(
            x,
            w.reshape((1,) * num_spatial + (c_in, features)),
            window_strides=(1,) * num_spatial,
            padding="VALID",
            dimension_numbers=geom.dimension_numbers,
            precision=precision,
            preferred_element_type=acc_dtype,
        )
    elif geom.channels_first:
        y = lax.dot_general(
            x,
            w,
            (((1,), (0,)), ((), ())),
            precision=precision,
            preferred_element_type=acc_dtype,
        )
        y = jnp.moveaxis(y, -1, 1)
    else:
        # A 2-D (N * prod(S), C) @ (C, F) product: XLA's gradient of the N-d
        # dot_general transposes the cotangent, which costs more than the matmul
        # on CPU; the flattened form has no transposes.
        y = lax.dot_general(
            x.reshape(-1, c_in),
            w,
            (((1,), (0,)), ((), ())),
            precision=precision,
            preferred_element_type=acc_dtype,
        )
    return _finish(y, geom, features, bias, act, out_dtype)


def separable_conv(
    inputs: Array,
    depthwise_kernel: Array,
    pointwise_kernel: Array,
    bias: Array | None = None,
    *,
    depthwise_bias: Array | None = None,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    intermediate_activation: str | Activation | None = None,
    activation: str | Activation | None = None,
    data_format: str | None = None,
    channel_multiplier: int | None = None,
    depth_multiplier: int | None = None,
    precision: lax.PrecisionLike = None,
    preferred_element_type: Any = None,
    impl: str = "auto",
) -> Array:
    """Depthwise separable convolution: :func:`depthwise_conv` then
    :func:`pointwise_conv`.

    Args:
      inputs: ``(*batch, *S, C)`` (or channels-first, see ``data_format``).
      depthwise_kernel: ``(*K, 1, C * M)``.
      pointwise_kernel: ``(C * M, F)`` or ``(1, ..., 1, C * M, F)``.
      bias: optional ``(F,)`` bias of the pointwise step.
      depthwise_bias: optional ``(C * M,)`` bias of the depthwise step.
      strides, padding, dilation: of the depthwise step.
      intermediate_activation: optional activation between the steps (after
        ``depthwise_bias``), as MobileNet blocks use. Keras applies none.
      activation: optional activation after the pointwise step.
      data_format, channel_multiplier, depth_multiplier, precision,
      preferred_element_type: as in :func:`depthwise_conv`.
      impl: depthwise implementation, as in :func:`depthwise_conv`; the pointwise
        step uses ``dot_general``.

    Returns:
      ``(*batch, *S', F)``. Cost: ``prod(S') * C * M * (prod(K) + F)``.
    """
    num_spatial = _kernel_spatial_rank(depthwise_kernel, "depthwise_kernel")
    pw_shape = _args.as_numpy_shape(pointwise_kernel)
    (c_mid, features), pw_spatial = _pointwise_kernel_2d(
        pointwise_kernel, "pointwise_kernel"
    )
    dw_shape = _args.as_numpy_shape(depthwise_kernel)
    if dw_shape[-1] != c_mid:
        raise ValueError(
            f"pointwise_kernel has shape {pw_shape}, expecting {c_mid} input channels, "
            f"but depthwise_kernel of shape {dw_shape} produces {dw_shape[-1]}."
        )
    if pw_spatial is not None and pw_spatial != num_spatial:
        raise ValueError(
            f"pointwise_kernel has shape {pw_shape} ({pw_spatial}-D) but "
            f"depthwise_kernel of shape {dw_shape} is {num_spatial}-D."
        )
    _args.check_floating(pointwise_kernel, "pointwise_kernel")
    _check_bias(bias, features, "bias")
    intermediate_activation = get_activation(
        intermediate_activation, "intermediate_activation"
    )
    activation = get_activation(activation)
    layout = data_format
    if data_format == "channels_first":
        layout = _args.layout_strings(num_spatial, True)[0]
    y = depthwise_conv(
        inputs,
        depthwise_kernel,
        depthwise_bias,
        strides=strides,
        padding=padding,
        dilation=dilation,
        activation=intermediate_activation,
        data_format=layout,
        channel_multiplier=channel_multiplier,
        depth_multiplier=depth_multiplier,
        precision=precision,
        preferred_element_type=preferred_element_type,
        impl=impl,
    )
    return pointwise_conv(
        y,
        pointwise_kernel,
        bias,
        activation=activation,
        data_format=layout,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def conv(
    inputs: Array,
    kernel: Array,
    bias: Array | None = None,
    *,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    dilation: IntOrSeq = 1,
    feature_group_count: int = 1,
    activation: str | Activation | None = None,
    data_format: str | None = None,
    precision: lax.PrecisionLike = None,
    preferred_element_type: Any = None,
) -> Array:
    """Standard (optionally grouped) convolution, the baseline for comparisons.

    Args:
      inputs: ``(*batch, *S, C)`` (or channels-first, see ``data_format``).
      kernel: ``(*K, C / feature_group_count, F)`` in HWIO order.
      bias: optional ``(F,)``.
      feature_group_count: number of channel groups ``G``; ``C`` and ``F`` must
        be multiples of ``G``.
      Other arguments as in :func:`depthwise_conv`.

    Returns:
      ``(*batch, *S', F)``. Cost: ``prod(S') * (C / G) * F * prod(K)``.
    """
    num_spatial = _kernel_spatial_rank(kernel, "kernel")
    kshape = _args.as_numpy_shape(kernel)
    _args.check_floating(inputs, "inputs")
    _args.check_floating(kernel, "kernel")
    groups = _args.check_positive_int(feature_group_count, "feature_group_count")
    geom = resolve_geometry(
        _args.as_numpy_shape(inputs),
        kshape[:num_spatial],
        strides=strides,
        padding=padding,
        dilation=dilation,
        data_format=data_format,
    )
    features = kshape[-1]
    if geom.channels % groups or features % groups:
        raise ValueError(
            f"feature_group_count={groups} must divide the input channels "
            f"({geom.channels}) and the output channels ({features})."
        )
    if kshape[-2] * groups != geom.channels:
        raise ValueError(
            f"kernel has shape {kshape}; for inputs with {geom.channels} channels and "
            f"feature_group_count={groups} its input axis must be "
            f"{geom.channels // groups}."
        )
    _check_bias(bias, features, "bias")
    _check_preferred_element_type(preferred_element_type)
    act = get_activation(activation)
    _args.check_precision(precision)

    dtype = _compute_dtype(inputs, kernel)
    acc_dtype, out_dtype = _precision_plan(dtype, preferred_element_type)
    x = _flatten_batch(jnp.asarray(inputs, dtype), geom)
    x, pads = _fill_pad(x, geom)
    y = lax.conv_general_dilated(
        x,
        jnp.asarray(kernel, dtype),
        window_strides=geom.strides,
        padding=pads,
        rhs_dilation=geom.dilation,
        dimension_numbers=geom.dimension_numbers,
        feature_group_count=groups,
        precision=precision,
        preferred_element_type=acc_dtype,
    )
    return _finish(y, geom, features, bias, act, out_dtype)
