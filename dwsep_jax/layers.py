"""Flax linen modules over the functional core in :mod:`dwsep_jax.ops`.

The modules are N-dimensional: the number of spatial axes comes from
``num_spatial_dims``, else from the length of a sequence ``kernel_size``,
``strides`` or ``dilation``, else from the input rank (one batch axis assumed).
The ``*1D`` / ``*2D`` / ``*3D`` variants fix ``num_spatial_dims``, so
``DepthwiseConv2D(kernel_size=5)`` always builds a 5x5 kernel and
``DepthwiseConv2D(kernel_size=(5, 5, 5))`` is an error at construction.

Every field is checked when the module is constructed, before any input is seen:
kernel size, strides, dilation, padding, data format, channel multiplier,
activation names and the depthwise ``impl``.

Parameter trees read as the architecture::

    DepthwiseConv   {'kernel': (*K, 1, C*M), 'bias': (C*M,)}
    PointwiseConv   {'kernel': (C, F), 'bias': (F,)}
    SeparableConv   {'depthwise': {'kernel': (*K, 1, C*M)},
                     'pointwise': {'kernel': (C*M, F)}, 'bias': (F,)}
    Conv            {'kernel': (*K, C / G, F), 'bias': (F,)}

Keras names map as follows: ``filters`` is ``features``, ``dilation_rate`` is
``dilation``, ``depth_multiplier`` is accepted as an alias of
``channel_multiplier``, and ``depthwise_initializer`` / ``pointwise_initializer``
/ ``bias_initializer`` are ``depthwise_init`` / ``pointwise_init`` /
``bias_init``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

from dwsep_jax import _args, depthwise_impls, ops
from dwsep_jax.activations import Activation, get_activation
from dwsep_jax.initializers import depthwise_lecun_normal

Initializer = Callable[..., jax.Array]

MULTIPLIER_HINT = (
    " channel_multiplier (Keras: depth_multiplier) is the integer number of "
    "depthwise filters per input channel; the network-wide width multiplier "
    "(alpha, a float that scales every layer's channels) belongs to the model, "
    "not to a layer."
)
_DATA_FORMATS = (
    "channels_last",
    "channels_first",
    *("NWC", "NCW", "NHWC", "NCHW", "NDHWC", "NCDHW"),
)


def _is_seq(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def static_spatial_dims(num_spatial_dims: int | None, **per_axis: Any) -> int | None:
    """Number of spatial axes known before any input is seen, or ``None``.

    Args:
      num_spatial_dims: an explicit 1, 2 or 3, or ``None``.
      **per_axis: per-axis arguments (``kernel_size=...``, ``strides=...``); each
        sequence among them fixes the number of axes, and all must agree.

    Raises:
      ValueError: ``num_spatial_dims`` is not 1, 2 or 3, or the per-axis
        arguments disagree with it or with each other.
    """
    if num_spatial_dims is not None and (
        not _args.is_int(num_spatial_dims) or num_spatial_dims not in (1, 2, 3)
    ):
        raise ValueError(f"num_spatial_dims={num_spatial_dims!r}; expected 1, 2 or 3.")
    n, source = num_spatial_dims, "num_spatial_dims"
    for name, value in per_axis.items():
        if not _is_seq(value):
            continue
        if n is None:
            if len(value) not in (1, 2, 3):
                raise ValueError(
                    f"{name}={value!r} has {len(value)} entries, so {len(value)} "
                    "spatial axes; expected 1, 2 or 3."
                )
            n, source = len(value), f"{name}={value!r}"
        elif len(value) != n:
            raise ValueError(
                f"{name}={value!r} has {len(value)} entries but {source} gives {n} "
                f"spatial axes; expected an int or a sequence of {n} ints."
            )
    return n


def check_numeric_fields(module: Any) -> None:
    """Checks ``use_bias``, the dtype fields and ``precision`` of a conv module."""
    if not isinstance(module.use_bias, bool):
        raise TypeError(
            f"use_bias={module.use_bias!r} of type {type(module.use_bias).__name__}; "
            "expected True or False."
        )
    for name in ("dtype", "param_dtype", "preferred_element_type"):
        value = getattr(module, name, None)
        if value is None:
            continue
        try:
            dtype = jnp.dtype(value)
        except TypeError as err:
            raise TypeError(f"{name}={value!r} is not a dtype.") from err
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{name}={value!r}; expected a floating-point dtype (bfloat16, "
                "float16, float32 or float64)."
            )
    _args.check_precision(module.precision)


def check_conv_fields(
    *,
    kernel_size: Any,
    strides: Any = 1,
    dilation: Any = 1,
    padding: Any = "SAME",
    data_format: str | None = None,
    num_spatial_dims: int | None = None,
    impl: str | None = None,
) -> int | None:
    """Validates the geometry fields of a conv module; returns the static rank.

    Every check runs on Python values, so a module with a bad field fails when it
    is constructed, with a message that names the field and the value given.
    """
    n = static_spatial_dims(
        num_spatial_dims, kernel_size=kernel_size, strides=strides, dilation=dilation
    )
    for name, value in (
        ("kernel_size", kernel_size),
        ("strides", strides),
        ("dilation", dilation),
    ):
        if n is None:
            _args.check_positive_int(value, name)
        else:
            _args.to_tuple(value, n, name)
    if n is not None:
        ksize = _args.to_tuple(kernel_size, n, "kernel_size")
        _args.resolve_padding(
            padding,
            ksize,
            ksize,
            _args.to_tuple(strides, n, "strides"),
            _args.to_tuple(dilation, n, "dilation"),
        )
        if data_format is not None:
            _args.parse_data_format(data_format, n)
    else:
        if isinstance(padding, str) or _args.is_int(padding):
            _args.resolve_padding(padding, (1,), (1,), (1,), (1,))
        elif not _is_seq(padding):
            raise TypeError(
                f"padding={padding!r} of type {type(padding).__name__}; expected a "
                "string, an int or a per-axis sequence."
            )
        if data_format is not None and data_format not in _DATA_FORMATS:
            raise ValueError(
                f"data_format={data_format!r}; expected one of {_DATA_FORMATS}."
            )
    if impl is not None and impl not in depthwise_impls.IMPL_NAMES:
        names = depthwise_impls.IMPL_NAMES
        raise ValueError(f"impl={impl!r}; expected one of {names}.")
    return n


def resolve_multiplier(channel_multiplier: Any, depth_multiplier: Any) -> int:
    """The channel multiplier ``M`` from ``channel_multiplier`` or its Keras alias.

    Raises:
      TypeError: a non-integer value (``2.0`` and ``0.25`` included).
      ValueError: a value below 1, or two values that disagree.
    """
    value = _args.check_positive_int(
        channel_multiplier, "channel_multiplier", MULTIPLIER_HINT
    )
    if depth_multiplier is None:
        return value
    depth = _args.check_positive_int(
        depth_multiplier, "depth_multiplier", MULTIPLIER_HINT
    )
    if value not in (1, depth):
        raise ValueError(
            f"channel_multiplier={value} and depth_multiplier={depth} disagree; "
            "give one of them."
        )
    return depth


def _num_spatial(module: Any, inputs: jax.Array) -> int:
    n = static_spatial_dims(
        module.num_spatial_dims,
        kernel_size=module.kernel_size,
        strides=module.strides,
        dilation=module.dilation,
    )
    if n is not None:
        return n
    n = inputs.ndim - 2
    if n not in (1, 2, 3):
        raise ValueError(
            f"cannot infer the number of spatial axes from inputs of shape "
            f"{inputs.shape} with an int kernel_size={module.kernel_size}; set "
            "num_spatial_dims or use the 1D/2D/3D variant."
        )
    return n


def _layout(data_format: str | None, n: int) -> str | None:
    """``data_format`` with 'channels_first' spelled out for ``n`` spatial axes."""
    if data_format == "channels_first":
        return _args.layout_strings(n, True)[0]
    return data_format


def _input_channels(inputs: jax.Array, n: int, data_format: str | None) -> int:
    channels_first = _args.parse_data_format(data_format, n)
    _, _, channels = _args.split_input(inputs.shape, n, channels_first, "inputs")
    return channels


class DepthwiseConv(nn.Module):
    """Depthwise convolution with ``channel_multiplier`` filters per channel.

    ``(*batch, *S, C) -> (*batch, *S', C * M)`` (or channels-first), with any
    number of batch axes; cost ``prod(S') * C * M * prod(K)`` multiply-adds.

    Attributes:
      kernel_size: int (every spatial axis) or per-axis ints.
      channel_multiplier: ``M``, a positive int: filters per input channel.
      depth_multiplier: Keras name for ``channel_multiplier``.
      strides: int or per-axis ints.
      padding: 'SAME', 'VALID', 'CAUSAL', 'REFLECT', 'CIRCULAR', 'EDGE', an int,
        per-axis ints or per-axis ``(low, high)`` pairs (see
        :func:`dwsep_jax.ops.depthwise_conv`).
      dilation: kernel dilation (Flax: ``kernel_dilation``), int or per-axis.
      use_bias: add a ``(C * M,)`` bias.
      activation: optional activation name or callable applied last.
      data_format: 'channels_last' (default), 'channels_first' or a layout string
        such as 'NHWC' / 'NCHW'.
      num_spatial_dims: 1, 2 or 3; inferred when ``None``.
      kernel_init: initializer of the ``(*K, 1, C * M)`` kernel; the default is
        LeCun normal with per-group fans (fan-in ``prod(K)``).
      bias_init: initializer of the bias.
      dtype: computation dtype (``None``: promote inputs and parameters).
      param_dtype: dtype of the parameters.
      precision: passed to ``lax.conv_general_dilated``.
      preferred_element_type: accumulation / output dtype of the convolution.
      impl: depthwise implementation ('auto', 'lax', 'shift', ...).
    """

    kernel_size: int | Sequence[int]
    channel_multiplier: int = 1
    depth_multiplier: int | None = None
    strides: int | Sequence[int] = 1
    padding: Any = "SAME"
    dilation: int | Sequence[int] = 1
    use_bias: bool = True
    activation: str | Activation | None = None
    data_format: str | None = None
    num_spatial_dims: int | None = None
    kernel_init: Initializer | None = None
    bias_init: Initializer = nn.initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: lax.PrecisionLike = None
    preferred_element_type: Any = None
    impl: str = "auto"

    def __post_init__(self) -> None:
        check_numeric_fields(self)
        check_conv_fields(
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation=self.dilation,
            padding=self.padding,
            data_format=self.data_format,
            num_spatial_dims=self.num_spatial_dims,
            impl=self.impl,
        )
        resolve_multiplier(self.channel_multiplier, self.depth_multiplier)
        get_activation(self.activation, "activation")
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', C * M)`` (or channels-first)."""
        n = _num_spatial(self, inputs)
        kernel_size = _args.to_tuple(self.kernel_size, n, "kernel_size")
        multiplier = resolve_multiplier(self.channel_multiplier, self.depth_multiplier)
        data_format = _layout(self.data_format, n)
        features = _input_channels(inputs, n, data_format) * multiplier
        init = self.kernel_init or depthwise_lecun_normal(multiplier)
        kernel = self.param(
            "kernel", init, (*kernel_size, 1, features), self.param_dtype
        )
        bias = (
            self.param("bias", self.bias_init, (features,), self.param_dtype)
            if self.use_bias
            else None
        )
        inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        return ops.depthwise_conv(
            inputs,
            kernel,
            bias,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            activation=self.activation,
            data_format=data_format,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
            impl=self.impl,
        )


class PointwiseConv(nn.Module):
    """1x1 convolution mixing channels: ``(*batch, *S, C) -> (*batch, *S, F)``.

    Cost ``prod(S) * C * F`` multiply-adds.

    Attributes:
      features: output channels ``F`` (Keras: ``filters``).
      use_bias, activation, bias_init, dtype, param_dtype, precision,
      preferred_element_type: as in :class:`DepthwiseConv`.
      kernel_init: initializer of the ``(C, F)`` kernel (LeCun normal).
      data_format: 'channels_last' (default), 'channels_first' or a layout
        string.
      num_spatial_dims: number of spatial axes; needed for 'channels_first'
        unless it can be read from the input rank, and when set the input must
        have at least ``num_spatial_dims + 1`` axes.
    """

    features: int
    use_bias: bool = True
    activation: str | Activation | None = None
    data_format: str | None = None
    num_spatial_dims: int | None = None
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: lax.PrecisionLike = None
    preferred_element_type: Any = None

    def __post_init__(self) -> None:
        check_numeric_fields(self)
        _args.check_positive_int(self.features, "features")
        check_conv_fields(
            kernel_size=1,
            data_format=self.data_format,
            num_spatial_dims=self.num_spatial_dims,
        )
        get_activation(self.activation, "activation")
        super().__post_init__()

    def _spatial_dims(self, inputs: jax.Array) -> int:
        if self.num_spatial_dims is not None:
            return self.num_spatial_dims
        if self.data_format not in (None, "channels_last", "channels_first"):
            return len(self.data_format) - 2
        return max(1, min(3, inputs.ndim - 2))

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S, F)`` (or channels-first)."""
        n = self._spatial_dims(inputs)
        data_format = self.data_format
        if data_format is not None and data_format != "channels_last":
            data_format = _layout(data_format, n)
        channels = _input_channels(inputs, n, data_format)
        kernel = self.param(
            "kernel", self.kernel_init, (channels, self.features), self.param_dtype
        )
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        return ops.pointwise_conv(
            inputs,
            kernel,
            bias,
            activation=self.activation,
            data_format=data_format,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )


class SeparableConv(nn.Module):
    """Depthwise separable convolution: depthwise, optional activation, pointwise.

    ``(*batch, *S, C) -> (*batch, *S', F)``; cost
    ``prod(S') * C * M * (prod(K) + F)`` multiply-adds, against
    ``prod(S') * C * F * prod(K)`` for a standard conv (ratio ``1/F + 1/prod(K)``
    for ``M = 1``).

    Attributes:
      features: output channels ``F`` (Keras: ``filters``).
      kernel_size, channel_multiplier, depth_multiplier, strides, padding,
      dilation, data_format, num_spatial_dims, dtype, param_dtype, precision,
      preferred_element_type, impl: as in :class:`DepthwiseConv`; the geometry
      applies to the depthwise step.
      use_bias: add an ``(F,)`` bias after the pointwise step.
      intermediate_activation: activation between the steps (Keras: none).
      activation: activation after the pointwise step.
      depthwise_init: initializer of ``depthwise/kernel`` ``(*K, 1, C * M)``
        (default: LeCun normal with per-group fans).
      pointwise_init: initializer of ``pointwise/kernel`` ``(C * M, F)``.
      bias_init: initializer of ``bias``.
    """

    features: int
    kernel_size: int | Sequence[int]
    channel_multiplier: int = 1
    depth_multiplier: int | None = None
    strides: int | Sequence[int] = 1
    padding: Any = "SAME"
    dilation: int | Sequence[int] = 1
    use_bias: bool = True
    intermediate_activation: str | Activation | None = None
    activation: str | Activation | None = None
    data_format: str | None = None
    num_spatial_dims: int | None = None
    depthwise_init: Initializer | None = None
    pointwise_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: lax.PrecisionLike = None
    preferred_element_type: Any = None
    impl: str = "auto"

    def __post_init__(self) -> None:
        check_numeric_fields(self)
        _args.check_positive_int(self.features, "features")
        check_conv_fields(
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation=self.dilation,
            padding=self.padding,
            data_format=self.data_format,
            num_spatial_dims=self.num_spatial_dims,
            impl=self.impl,
        )
        resolve_multiplier(self.channel_multiplier, self.depth_multiplier)
        get_activation(self.intermediate_activation, "intermediate_activation")
        get_activation(self.activation, "activation")
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', F)`` (or channels-first)."""
        n = _num_spatial(self, inputs)
        data_format = _layout(self.data_format, n)
        common = dict(
            data_format=data_format,
            num_spatial_dims=n,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )
        y = DepthwiseConv(
            kernel_size=self.kernel_size,
            channel_multiplier=resolve_multiplier(
                self.channel_multiplier, self.depth_multiplier
            ),
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            use_bias=False,
            activation=self.intermediate_activation,
            kernel_init=self.depthwise_init,
            impl=self.impl,
            name="depthwise",
            **common,
        )(inputs)
        y = PointwiseConv(
            features=self.features,
            use_bias=False,
            kernel_init=self.pointwise_init,
            name="pointwise",
            **common,
        )(y)
        if self.use_bias:
            bias = self.param(
                "bias", self.bias_init, (self.features,), self.param_dtype
            )
            if _args.parse_data_format(data_format, n):
                bias = bias.reshape((self.features,) + (1,) * n)
            y = y + bias.astype(y.dtype)
        act = get_activation(self.activation, "activation")
        return act(y) if act is not None else y


class Conv(nn.Module):
    """Standard (optionally grouped) convolution, the baseline of the comparisons.

    ``(*batch, *S, C) -> (*batch, *S', F)``; cost
    ``prod(S') * (C / G) * F * prod(K)`` multiply-adds.

    Attributes:
      features: output channels ``F`` (Keras: ``filters``).
      kernel_size, strides, padding, dilation, use_bias, activation,
      data_format, num_spatial_dims, bias_init, dtype, param_dtype, precision,
      preferred_element_type: as in :class:`DepthwiseConv`.
      feature_group_count: channel groups ``G``; must divide ``C`` and ``F``.
      kernel_init: initializer of the ``(*K, C / G, F)`` kernel (LeCun normal,
        whose fan-in ``prod(K) * C / G`` is already per group).
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: Any = "SAME"
    dilation: int | Sequence[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    activation: str | Activation | None = None
    data_format: str | None = None
    num_spatial_dims: int | None = None
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: lax.PrecisionLike = None
    preferred_element_type: Any = None

    def __post_init__(self) -> None:
        check_numeric_fields(self)
        _args.check_positive_int(self.features, "features")
        groups = _args.check_positive_int(
            self.feature_group_count, "feature_group_count"
        )
        if self.features % groups:
            raise ValueError(
                f"feature_group_count={groups} does not divide features="
                f"{self.features}."
            )
        check_conv_fields(
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation=self.dilation,
            padding=self.padding,
            data_format=self.data_format,
            num_spatial_dims=self.num_spatial_dims,
        )
        get_activation(self.activation, "activation")
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', F)`` (or channels-first)."""
        n = _num_spatial(self, inputs)
        kernel_size = _args.to_tuple(self.kernel_size, n, "kernel_size")
        data_format = _layout(self.data_format, n)
        channels = _input_channels(inputs, n, data_format)
        groups = self.feature_group_count
        if channels % groups:
            raise ValueError(
                f"feature_group_count={groups} does not divide the {channels} input "
                f"channels of inputs with shape {inputs.shape}."
            )
        kernel = self.param(
            "kernel",
            self.kernel_init,
            (*kernel_size, channels // groups, self.features),
            self.param_dtype,
        )
        bias = (
            self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias
            else None
        )
        inputs, kernel, bias = promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        return ops.conv(
            inputs,
            kernel,
            bias,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            feature_group_count=groups,
            activation=self.activation,
            data_format=data_format,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )


def _fixed_dims(base: type, n: int) -> type:
    """A subclass of ``base`` with ``num_spatial_dims`` fixed to ``n``."""
    cls = type(
        f"{base.__name__}{n}D",
        (base,),
        {"__annotations__": {"num_spatial_dims": int | None}, "num_spatial_dims": n},
    )
    cls.__doc__ = (
        f"{n}-D :class:`{base.__name__}` (``num_spatial_dims={n}``): an int "
        f"``kernel_size`` means the same size on all {n} spatial axes."
    )
    cls.__module__ = __name__
    return cls


DepthwiseConv1D = _fixed_dims(DepthwiseConv, 1)
DepthwiseConv2D = _fixed_dims(DepthwiseConv, 2)
DepthwiseConv3D = _fixed_dims(DepthwiseConv, 3)
PointwiseConv1D = _fixed_dims(PointwiseConv, 1)
PointwiseConv2D = _fixed_dims(PointwiseConv, 2)
PointwiseConv3D = _fixed_dims(PointwiseConv, 3)
SeparableConv1D = _fixed_dims(SeparableConv, 1)
SeparableConv2D = _fixed_dims(SeparableConv, 2)
SeparableConv3D = _fixed_dims(SeparableConv, 3)
Conv1D = _fixed_dims(Conv, 1)
Conv2D = _fixed_dims(Conv, 2)
Conv3D = _fixed_dims(Conv, 3)
