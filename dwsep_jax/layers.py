"""Flax linen modules over the functional core in :mod:`dwsep_jax.ops`.

The modules are N-dimensional: the number of spatial axes comes from
``num_spatial_dims``, else from the length of a sequence ``kernel_size``, else
from the input rank (one batch axis assumed). The ``*1D`` / ``*2D`` / ``*3D``
variants fix ``num_spatial_dims``, so ``DepthwiseConv2D(kernel_size=5)`` always
builds a 5x5 kernel.

Parameter trees read as the architecture::

    DepthwiseConv   {'kernel': (*K, 1, C*M), 'bias': (C*M,)}
    PointwiseConv   {'kernel': (C, F), 'bias': (F,)}
    SeparableConv   {'depthwise': {'kernel': (*K, 1, C*M)},
                     'pointwise': {'kernel': (C*M, F)}, 'bias': (F,)}
    Conv            {'kernel': (*K, C, F), 'bias': (F,)}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype
from jax import lax

from dwsep_jax import _args, ops
from dwsep_jax.activations import Activation, get_activation
from dwsep_jax.initializers import depthwise_lecun_normal

Initializer = Callable[..., jax.Array]
_MULTIPLIER_HINT = (
    " channel_multiplier (Keras: depth_multiplier) is the integer number of "
    "depthwise filters per input channel; the network-wide width multiplier "
    "(alpha) belongs to the model, not to a layer."
)


def _check_kernel_size(kernel_size: Any, num_spatial_dims: int | None) -> None:
    if _args.is_int(kernel_size):
        _args.check_positive_int(kernel_size, "kernel_size")
        return
    if not isinstance(kernel_size, Sequence) or isinstance(kernel_size, str):
        raise TypeError(
            f"kernel_size={kernel_size!r} of type {type(kernel_size).__name__}; "
            "expected an int or a sequence of ints."
        )
    n = num_spatial_dims if num_spatial_dims is not None else len(kernel_size)
    if n not in (1, 2, 3):
        raise ValueError(
            f"kernel_size={kernel_size!r} gives {len(kernel_size)} spatial axes; "
            "expected 1, 2 or 3."
        )
    _args.to_tuple(tuple(kernel_size), n, "kernel_size")


def _num_spatial(module: Any, inputs: jax.Array) -> int:
    if module.num_spatial_dims is not None:
        return module.num_spatial_dims
    if not _args.is_int(module.kernel_size):
        return len(module.kernel_size)
    n = inputs.ndim - 2
    if n not in (1, 2, 3):
        raise ValueError(
            f"cannot infer the number of spatial axes from inputs of shape "
            f"{inputs.shape} with an int kernel_size={module.kernel_size}; set "
            "num_spatial_dims or use the 1D/2D/3D variant."
        )
    return n


def _check_spatial_dims(value: int | None) -> None:
    if value is not None and value not in (1, 2, 3):
        raise ValueError(f"num_spatial_dims={value!r}; expected 1, 2 or 3.")


def _multiplier(module: Any) -> int:
    value = module.channel_multiplier
    if module.depth_multiplier is not None:
        depth = _args.check_positive_int(
            module.depth_multiplier, "depth_multiplier", _MULTIPLIER_HINT
        )
        if value not in (1, depth):
            raise ValueError(
                f"channel_multiplier={value} and depth_multiplier={depth} disagree; "
                "give one of them."
            )
        return depth
    return _args.check_positive_int(value, "channel_multiplier", _MULTIPLIER_HINT)


def _channels_first(data_format: str | None, n: int) -> bool:
    return data_format is not None and _args.parse_data_format(data_format, n)


def _input_channels(inputs: jax.Array, n: int, data_format: str | None) -> int:
    channels_first = _args.parse_data_format(data_format, n)
    _, _, channels = _args.split_input(inputs.shape, n, channels_first, "inputs")
    return channels


class DepthwiseConv(nn.Module):
    """Depthwise convolution with ``channel_multiplier`` filters per channel.

    Attributes:
      kernel_size: int (every spatial axis) or per-axis ints.
      channel_multiplier: ``M``, filters per input channel (output ``C * M``).
      depth_multiplier: Keras name for ``channel_multiplier``.
      strides, padding, dilation: see :func:`dwsep_jax.ops.depthwise_conv`.
      use_bias: add a ``(C * M,)`` bias.
      activation: optional activation name or callable applied last.
      data_format: 'channels_last' (default), 'channels_first' or a layout string.
      num_spatial_dims: 1, 2 or 3; inferred when ``None``.
      kernel_init: initializer for the ``(*K, 1, C * M)`` kernel; the default is
        LeCun normal with per-group fans (fan-in ``prod(K)``).
      bias_init: initializer for the bias.
      dtype: computation dtype (``None``: promote inputs and parameters).
      param_dtype: dtype of the parameters.
      precision: passed to XLA.
      impl: depthwise implementation ('auto', 'lax', 'shift').
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
    impl: str = "auto"

    def __post_init__(self) -> None:
        _check_spatial_dims(self.num_spatial_dims)
        _check_kernel_size(self.kernel_size, self.num_spatial_dims)
        _multiplier(self)
        get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', C * M)`` (or channels-first)."""
        n = _num_spatial(self, inputs)
        kernel_size = _args.to_tuple(self.kernel_size, n, "kernel_size")
        multiplier = _multiplier(self)
        channels = _input_channels(inputs, n, self.data_format)
        features = channels * multiplier
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
            data_format=self.data_format,
            precision=self.precision,
            impl=self.impl,
        )


class PointwiseConv(nn.Module):
    """1x1 convolution mixing channels: ``(*batch, *S, C) -> (*batch, *S, F)``.

    Attributes:
      features: output channels ``F``.
      use_bias, activation, kernel_init, bias_init, dtype, param_dtype,
      precision: as in :class:`DepthwiseConv`; ``kernel_init`` defaults to LeCun
        normal over the ``(C, F)`` kernel.
      data_format: channels-first layouts need ``num_spatial_dims`` or an
        explicit layout string.
      num_spatial_dims: number of spatial axes (only needed for channels-first).
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

    def __post_init__(self) -> None:
        _args.check_positive_int(self.features, "features")
        _check_spatial_dims(self.num_spatial_dims)
        get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        data_format = self.data_format
        n = self.num_spatial_dims
        if data_format == "channels_first":
            n = n or inputs.ndim - 2
            data_format = _args.layout_strings(n, True)[0]
        elif data_format not in (None, "channels_last"):
            n = len(data_format) - 2
        channels = _input_channels(inputs, n or 1, data_format)
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
        )


class SeparableConv(nn.Module):
    """Depthwise separable convolution: depthwise, optional activation, pointwise.

    Attributes:
      features: output channels ``F``.
      kernel_size, channel_multiplier, depth_multiplier, strides, padding,
      dilation, data_format, num_spatial_dims, dtype, param_dtype, precision,
      impl: as in :class:`DepthwiseConv`.
      use_bias: add an ``(F,)`` bias after the pointwise step.
      intermediate_activation: activation between the steps (Keras: none).
      activation: activation after the pointwise step.
      depthwise_init: initializer of ``depthwise/kernel``.
      pointwise_init: initializer of ``pointwise/kernel``.
      bias_init: initializer of ``bias``.

    Cost: ``prod(S') * C * M * (prod(K) + F)`` multiply-adds per example.
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
    impl: str = "auto"

    def __post_init__(self) -> None:
        _args.check_positive_int(self.features, "features")
        _check_spatial_dims(self.num_spatial_dims)
        _check_kernel_size(self.kernel_size, self.num_spatial_dims)
        _multiplier(self)
        get_activation(self.intermediate_activation, "intermediate_activation")
        get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', F)`` (or channels-first)."""
        n = _num_spatial(self, inputs)
        data_format = self.data_format
        if data_format == "channels_first":
            data_format = _args.layout_strings(n, True)[0]
        y = DepthwiseConv(
            kernel_size=self.kernel_size,
            channel_multiplier=_multiplier(self),
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            use_bias=False,
            activation=self.intermediate_activation,
            data_format=data_format,
            num_spatial_dims=n,
            kernel_init=self.depthwise_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            impl=self.impl,
            name="depthwise",
        )(inputs)
        y = PointwiseConv(
            features=self.features,
            use_bias=False,
            data_format=data_format,
            num_spatial_dims=n,
            kernel_init=self.pointwise_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            precision=self.precision,
            name="pointwise",
        )(y)
        if self.use_bias:
            bias = self.param(
                "bias", self.bias_init, (self.features,), self.param_dtype
            )
            if _channels_first(data_format, n):
                bias = bias.reshape((self.features,) + (1,) * n)
            y = y + bias.astype(y.dtype)
        act = get_activation(self.activation)
        return act(y) if act is not None else y


class Conv(nn.Module):
    """Standard (optionally grouped) convolution for baselines.

    Attributes:
      features: output channels ``F``.
      kernel_size, strides, padding, dilation, use_bias, activation,
      data_format, num_spatial_dims, bias_init, dtype, param_dtype, precision: as
      in :class:`DepthwiseConv`.
      feature_group_count: channel groups ``G``.
      kernel_init: initializer of the ``(*K, C / G, F)`` kernel.

    Cost: ``prod(S') * (C / G) * F * prod(K)`` multiply-adds per example.
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

    def __post_init__(self) -> None:
        _args.check_positive_int(self.features, "features")
        _args.check_positive_int(self.feature_group_count, "feature_group_count")
        _check_spatial_dims(self.num_spatial_dims)
        _check_kernel_size(self.kernel_size, self.num_spatial_dims)
        get_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        n = _num_spatial(self, inputs)
        kernel_size = _args.to_tuple(self.kernel_size, n, "kernel_size")
        channels = _input_channels(inputs, n, self.data_format)
        groups = self.feature_group_count
        if channels % groups:
            raise ValueError(
                f"feature_group_count={groups} does not divide the {channels} input "
                "channels."
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
            data_format=self.data_format,
            precision=self.precision,
        )


def _fixed_dims(base: type, n: int) -> type:
    """A subclass of ``base`` with ``num_spatial_dims`` fixed to ``n``."""
    cls = type(
        f"{base.__name__}{n}D",
        (base,),
        {"__annotations__": {"num_spatial_dims": int | None}, "num_spatial_dims": n},
    )
    cls.__doc__ = f"{n}-D :class:`{base.__name__}` (``num_spatial_dims={n}``)."
    cls.__module__ = __name__
    return cls


DepthwiseConv1D = _fixed_dims(DepthwiseConv, 1)
DepthwiseConv2D = _fixed_dims(DepthwiseConv, 2)
DepthwiseConv3D = _fixed_dims(DepthwiseConv, 3)
SeparableConv1D = _fixed_dims(SeparableConv, 1)
SeparableConv2D = _fixed_dims(SeparableConv, 2)
SeparableConv3D = _fixed_dims(SeparableConv, 3)
Conv1D = _fixed_dims(Conv, 1)
Conv2D = _fixed_dims(Conv, 2)
Conv3D = _fixed_dims(Conv, 3)
