"""The convolution modules of :mod:`dwsep_jax.layers` in ``flax.nnx``.

The modules hold their parameters as ``nnx.Param`` and call the same functional
core (:mod:`dwsep_jax.ops`) as the linen modules, with the same arguments,
validation and parameter names, so a linen parameter tree loads into the nnx
module unchanged::

    DepthwiseConv   kernel (*K, 1, C*M), bias (C*M,)
    PointwiseConv   kernel (C, F), bias (F,)
    SeparableConv   depthwise.kernel (*K, 1, C*M), pointwise.kernel (C*M, F),
                    bias (F,)
    Conv            kernel (*K, C / G, F), bias (F,)

As everywhere in ``nnx``, the input channels are given at construction
(``in_features``), so the number of spatial axes must be known then too: from
``num_spatial_dims``, from a sequence ``kernel_size`` / ``strides`` /
``dilation``, or from the ``*1D`` / ``*2D`` / ``*3D`` variants. An int
``kernel_size`` alone is an error rather than a silent 1-D kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, traverse_util
from flax.linen.dtypes import promote_dtype
from jax import lax

from dwsep_jax import _args, ops
from dwsep_jax.activations import Activation, get_activation
from dwsep_jax.initializers import depthwise_lecun_normal
from dwsep_jax.layers import check_conv_fields, resolve_multiplier

Initializer = Callable[..., jax.Array]
_zeros = jax.nn.initializers.zeros
_lecun = jax.nn.initializers.lecun_normal()


def _spatial_dims(num_spatial_dims: int | None, kernel_size: Any, **fields: Any) -> int:
    n = check_conv_fields(
        kernel_size=kernel_size, num_spatial_dims=num_spatial_dims, **fields
    )
    if n is None:
        raise ValueError(
            f"kernel_size={kernel_size!r} is an int and num_spatial_dims is not set, "
            "so the number of spatial axes is unknown; set num_spatial_dims, give "
            "kernel_size per axis, or use the 1D/2D/3D variant (DepthwiseConv2D "
            "etc.)."
        )
    return n


def _check_channels(
    inputs: jax.Array, n: int, data_format: str | None, in_features: int
) -> None:
    channels_first = _args.parse_data_format(data_format, n)
    _, _, channels = _args.split_input(tuple(inputs.shape), n, channels_first, "inputs")
    if channels != in_features:
        raise ValueError(
            f"inputs of shape {tuple(inputs.shape)} have {channels} channels; the "
            f"module was built with in_features={in_features}."
        )


def _param(init: Initializer, rngs: nnx.Rngs, shape: tuple, dtype: Any) -> nnx.Param:
    return nnx.Param(init(rngs.params(), shape, dtype))


def _optional_bias(
    use_bias: bool, init: Initializer, rngs: nnx.Rngs, features: int, dtype: Any
) -> Any:
    if use_bias:
        return _param(init, rngs, (features,), dtype)
    return nnx.data(None)


def _value(variable: Any) -> jax.Array | None:
    return None if variable is None else variable[...]


class DepthwiseConv(nnx.Module):
    """Depthwise convolution: ``(*batch, *S, C) -> (*batch, *S', C * M)``.

    Args:
      in_features: input channels ``C``.
      kernel_size: int or per-axis ints.
      channel_multiplier: ``M``, a positive int (Keras: ``depth_multiplier``,
        also accepted).
      strides, padding, dilation, use_bias, activation, data_format,
      num_spatial_dims, dtype, param_dtype, precision, preferred_element_type,
      impl: as in :class:`dwsep_jax.layers.DepthwiseConv`.
      kernel_init: initializer of the ``(*K, 1, C * M)`` kernel (default LeCun
        normal with per-group fans, fan-in ``prod(K)``).
      bias_init: initializer of the ``(C * M,)`` bias.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(
        self,
        in_features: int,
        kernel_size: int | Sequence[int],
        channel_multiplier: int = 1,
        *,
        depth_multiplier: int | None = None,
        strides: int | Sequence[int] = 1,
        padding: Any = "SAME",
        dilation: int | Sequence[int] = 1,
        use_bias: bool = True,
        activation: str | Activation | None = None,
        data_format: str | None = None,
        num_spatial_dims: int | None = None,
        kernel_init: Initializer | None = None,
        bias_init: Initializer = _zeros,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: lax.PrecisionLike = None,
        preferred_element_type: Any = None,
        impl: str = "auto",
        rngs: nnx.Rngs,
    ) -> None:
        self.in_features = _args.check_positive_int(in_features, "in_features")
        n = _spatial_dims(
            num_spatial_dims,
            kernel_size,
            strides=strides,
            dilation=dilation,
            padding=padding,
            data_format=data_format,
            impl=impl,
        )
        self.channel_multiplier = resolve_multiplier(
            channel_multiplier, depth_multiplier
        )
        get_activation(activation, "activation")
        self.num_spatial_dims = n
        self.kernel_size = _args.to_tuple(kernel_size, n, "kernel_size")
        self.out_features = self.in_features * self.channel_multiplier
        init = kernel_init or depthwise_lecun_normal(self.channel_multiplier)
        self.kernel = _param(
            init, rngs, (*self.kernel_size, 1, self.out_features), param_dtype
        )
        self.bias = _optional_bias(
            use_bias, bias_init, rngs, self.out_features, param_dtype
        )
        self.strides = strides
        self.padding = padding
        self.dilation = dilation
        self.activation = activation
        self.data_format = data_format
        self.dtype = dtype
        self.precision = precision
        self.preferred_element_type = preferred_element_type
        self.impl = impl

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', C * M)`` (or channels-first)."""
        n = self.num_spatial_dims
        _check_channels(inputs, n, self.data_format, self.in_features)
        inputs, kernel, bias = promote_dtype(
            inputs, self.kernel[...], _value(self.bias), dtype=self.dtype
        )
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
            preferred_element_type=self.preferred_element_type,
            impl=self.impl,
        )


class PointwiseConv(nnx.Module):
    """1x1 convolution: ``(*batch, *S, C) -> (*batch, *S, F)``, kernel ``(C, F)``.

    Args:
      in_features: input channels ``C``.
      out_features: output channels ``F``.
      use_bias, activation, dtype, param_dtype, precision,
      preferred_element_type: as in :class:`DepthwiseConv`.
      data_format: 'channels_last' (default), 'channels_first' (needs
        ``num_spatial_dims``) or a layout string.
      num_spatial_dims: number of spatial axes; when set, inputs need at least
        ``num_spatial_dims + 1`` axes.
      kernel_init, bias_init: initializers (LeCun normal, zeros).
      rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        activation: str | Activation | None = None,
        data_format: str | None = None,
        num_spatial_dims: int | None = None,
        kernel_init: Initializer = _lecun,
        bias_init: Initializer = _zeros,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: lax.PrecisionLike = None,
        preferred_element_type: Any = None,
        rngs: nnx.Rngs,
    ) -> None:
        self.in_features = _args.check_positive_int(in_features, "in_features")
        self.out_features = _args.check_positive_int(out_features, "out_features")
        n = check_conv_fields(
            kernel_size=1, data_format=data_format, num_spatial_dims=num_spatial_dims
        )
        if data_format == "channels_first" and n is None:
            raise ValueError(
                "data_format='channels_first' needs num_spatial_dims (or an "
                "explicit layout such as 'NCHW') to find the channel axis."
            )
        if n is None and data_format not in (None, "channels_last"):
            n = len(data_format) - 2
        get_activation(activation, "activation")
        self.num_spatial_dims = n
        self.kernel = _param(
            kernel_init, rngs, (self.in_features, self.out_features), param_dtype
        )
        self.bias = _optional_bias(
            use_bias, bias_init, rngs, self.out_features, param_dtype
        )
        self.activation = activation
        self.data_format = data_format
        self.dtype = dtype
        self.precision = precision
        self.preferred_element_type = preferred_element_type

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S, F)`` (or channels-first)."""
        n = self.num_spatial_dims
        data_format = self.data_format
        if data_format == "channels_first":
            data_format = _args.layout_strings(n, True)[0]
        _check_channels(inputs, n or 1, data_format, self.in_features)
        inputs, kernel, bias = promote_dtype(
            inputs, self.kernel[...], _value(self.bias), dtype=self.dtype
        )
        return ops.pointwise_conv(
            inputs,
            kernel,
            bias,
            activation=self.activation,
            data_format=data_format,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )


class SeparableConv(nnx.Module):
    """Depthwise separable convolution: ``(*batch, *S, C) -> (*batch, *S', F)``.

    Cost ``prod(S') * C * M * (prod(K) + F)`` multiply-adds.

    Args:
      in_features: input channels ``C``.
      out_features: output channels ``F``.
      kernel_size, channel_multiplier, depth_multiplier, strides, padding,
      dilation, data_format, num_spatial_dims, dtype, param_dtype, precision,
      preferred_element_type, impl: as in :class:`DepthwiseConv` (geometry of
      the depthwise step).
      use_bias: add an ``(F,)`` bias after the pointwise step.
      intermediate_activation: activation between the steps (Keras: none).
      activation: activation after the pointwise step.
      depthwise_init, pointwise_init, bias_init: initializers of
        ``depthwise.kernel``, ``pointwise.kernel`` and ``bias``.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        channel_multiplier: int = 1,
        *,
        depth_multiplier: int | None = None,
        strides: int | Sequence[int] = 1,
        padding: Any = "SAME",
        dilation: int | Sequence[int] = 1,
        use_bias: bool = True,
        intermediate_activation: str | Activation | None = None,
        activation: str | Activation | None = None,
        data_format: str | None = None,
        num_spatial_dims: int | None = None,
        depthwise_init: Initializer | None = None,
        pointwise_init: Initializer = _lecun,
        bias_init: Initializer = _zeros,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: lax.PrecisionLike = None,
        preferred_element_type: Any = None,
        impl: str = "auto",
        rngs: nnx.Rngs,
    ) -> None:
        out_features = _args.check_positive_int(out_features, "out_features")
        get_activation(intermediate_activation, "intermediate_activation")
        get_activation(activation, "activation")
        n = _spatial_dims(
            num_spatial_dims,
            kernel_size,
            strides=strides,
            dilation=dilation,
            padding=padding,
            data_format=data_format,
            impl=impl,
        )
        if data_format == "channels_first":
            data_format = _args.layout_strings(n, True)[0]
        common = dict(
            data_format=data_format,
            num_spatial_dims=n,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            preferred_element_type=preferred_element_type,
            rngs=rngs,
        )
        self.depthwise = DepthwiseConv(
            in_features,
            kernel_size,
            channel_multiplier,
            depth_multiplier=depth_multiplier,
            strides=strides,
            padding=padding,
            dilation=dilation,
            use_bias=False,
            activation=intermediate_activation,
            kernel_init=depthwise_init,
            impl=impl,
            **common,
        )
        self.pointwise = PointwiseConv(
            self.depthwise.out_features,
            out_features,
            use_bias=False,
            kernel_init=pointwise_init,
            **common,
        )
        self.bias = _optional_bias(use_bias, bias_init, rngs, out_features, param_dtype)
        self.in_features = self.depthwise.in_features
        self.out_features = out_features
        self.num_spatial_dims = n
        self.data_format = data_format
        self.activation = activation

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', F)`` (or channels-first)."""
        y = self.pointwise(self.depthwise(inputs))
        bias = _value(self.bias)
        if bias is not None:
            n = self.num_spatial_dims
            if _args.parse_data_format(self.data_format, n):
                bias = bias.reshape((self.out_features,) + (1,) * n)
            y = y + bias.astype(y.dtype)
        act = get_activation(self.activation, "activation")
        return act(y) if act is not None else y


class Conv(nnx.Module):
    """Standard (optionally grouped) convolution, the baseline of the comparisons.

    ``(*batch, *S, C) -> (*batch, *S', F)``, kernel ``(*K, C / G, F)``; cost
    ``prod(S') * (C / G) * F * prod(K)`` multiply-adds.

    Args:
      in_features: input channels ``C``.
      out_features: output channels ``F``.
      kernel_size, strides, padding, dilation, use_bias, activation,
      data_format, num_spatial_dims, dtype, param_dtype, precision,
      preferred_element_type: as in :class:`DepthwiseConv`.
      feature_group_count: channel groups ``G``; must divide ``C`` and ``F``.
      kernel_init, bias_init: initializers (LeCun normal, zeros).
      rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        strides: int | Sequence[int] = 1,
        padding: Any = "SAME",
        dilation: int | Sequence[int] = 1,
        feature_group_count: int = 1,
        use_bias: bool = True,
        activation: str | Activation | None = None,
        data_format: str | None = None,
        num_spatial_dims: int | None = None,
        kernel_init: Initializer = _lecun,
        bias_init: Initializer = _zeros,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: lax.PrecisionLike = None,
        preferred_element_type: Any = None,
        rngs: nnx.Rngs,
    ) -> None:
        self.in_features = _args.check_positive_int(in_features, "in_features")
        self.out_features = _args.check_positive_int(out_features, "out_features")
        groups = _args.check_positive_int(feature_group_count, "feature_group_count")
        if self.in_features % groups or self.out_features % groups:
            raise ValueError(
                f"feature_group_count={groups} must divide in_features="
                f"{self.in_features} and out_features={self.out_features}."
            )
        n = _spatial_dims(
            num_spatial_dims,
            kernel_size,
            strides=strides,
            dilation=dilation,
            padding=padding,
            data_format=data_format,
        )
        get_activation(activation, "activation")
        self.num_spatial_dims = n
        self.kernel_size = _args.to_tuple(kernel_size, n, "kernel_size")
        shape = (*self.kernel_size, self.in_features // groups, self.out_features)
        self.kernel = _param(kernel_init, rngs, shape, param_dtype)
        self.bias = _optional_bias(
            use_bias, bias_init, rngs, self.out_features, param_dtype
        )
        self.feature_group_count = groups
        self.strides = strides
        self.padding = padding
        self.dilation = dilation
        self.activation = activation
        self.data_format = data_format
        self.dtype = dtype
        self.precision = precision
        self.preferred_element_type = preferred_element_type

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``(*batch, *S, C) -> (*batch, *S', F)`` (or channels-first)."""
        n = self.num_spatial_dims
        _check_channels(inputs, n, self.data_format, self.in_features)
        inputs, kernel, bias = promote_dtype(
            inputs, self.kernel[...], _value(self.bias), dtype=self.dtype
        )
        return ops.conv(
            inputs,
            kernel,
            bias,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
            feature_group_count=self.feature_group_count,
            activation=self.activation,
            data_format=self.data_format,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )


def load_linen_params(module: nnx.Module, params: Mapping[str, Any]) -> None:
    """Copies a linen ``params`` tree into ``module`` in place.

    The linen and nnx modules of this package name their parameters alike, so
    ``params`` from ``layers.SeparableConv(...).init(...)['params']`` loads into
    the matching :class:`SeparableConv`.

    Raises:
      ValueError: the two trees differ in their names or in a shape.
    """
    state = nnx.state(module, nnx.Param)
    want = traverse_util.flatten_dict(nnx.to_pure_dict(state), sep="/")
    given = traverse_util.flatten_dict(dict(params), sep="/")
    if set(want) != set(given):
        raise ValueError(
            f"params hold {sorted(given)}; the module expects {sorted(want)}."
        )
    for key, value in want.items():
        if tuple(jnp.shape(given[key])) != tuple(value.shape):
            raise ValueError(
                f"params[{key!r}] has shape {tuple(jnp.shape(given[key]))}; the "
                f"module expects {tuple(value.shape)}."
            )
    pure = traverse_util.unflatten_dict(
        {k: jnp.asarray(v) for k, v in given.items()}, sep="/"
    )
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(module, state)


def _fixed_dims(base: type, n: int) -> type:
    """A subclass of ``base`` whose ``num_spatial_dims`` is fixed to ``n``."""

    def __init__(self, *args: Any, num_spatial_dims: int = n, **kwargs: Any) -> None:
        if num_spatial_dims != n:
            raise ValueError(
                f"num_spatial_dims={num_spatial_dims!r} given to "
                f"{base.__name__}{n}D, which is {n}-D."
            )
        base.__init__(self, *args, num_spatial_dims=n, **kwargs)

    cls = type(f"{base.__name__}{n}D", (base,), {"__init__": __init__})
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
