"""Building blocks and argument checks shared by the MobileNet models.

Every model here takes ``(N, H, W, C)`` images, has a ``conv_type`` switch
('separable' or 'standard'), a width multiplier ``alpha`` that scales every
layer's channels, batch norm after every convolution (batch statistics and a
running-average update in training, the running averages in evaluation) and a
dropout + dense classifier head.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
from jax import lax

from dwsep_jax import _args
from dwsep_jax.activations import Activation, get_activation
from dwsep_jax.layers import Conv, DepthwiseConv, PointwiseConv

CONV_TYPES = ("separable", "standard")
CONV_KINDS = ("standard", "depthwise", "pointwise")


def check_conv_type(conv_type: Any) -> str:
    """Returns ``conv_type`` after checking it is one of :data:`CONV_TYPES`."""
    if conv_type not in CONV_TYPES:
        raise ValueError(f"conv_type={conv_type!r}; expected one of {CONV_TYPES}.")
    return conv_type


def check_width_multiplier(width_multiplier: Any) -> float:
    """Returns the width multiplier ``alpha`` as a float after checking it is > 0."""
    hint = (
        "expected a positive number (alpha, the network-wide channel scale; not "
        "the per-layer channel_multiplier)."
    )
    if isinstance(width_multiplier, bool) or not isinstance(
        width_multiplier, (int, float)
    ):
        raise TypeError(f"width_multiplier={width_multiplier!r}; {hint}")
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier={width_multiplier!r}; {hint}")
    return float(width_multiplier)


def check_classifier_fields(model: Any) -> None:
    """Checks the fields every MobileNet classifier shares.

    ``conv_type``, ``width_multiplier``, ``num_classes``, ``stem_strides``,
    ``dropout_rate``, ``activation`` and ``impl``; each error names the field.
    """
    check_conv_type(model.conv_type)
    check_width_multiplier(model.width_multiplier)
    _args.check_positive_int(model.num_classes, "num_classes")
    _args.check_positive_int(model.stem_strides, "stem_strides")
    check_dropout_rate(model.dropout_rate)
    get_activation(model.activation, "activation")
    check_impl(model.impl)


def check_impl(impl: Any) -> str:
    """Returns ``impl`` after checking it names a depthwise implementation."""
    from dwsep_jax.depthwise_impls import IMPL_NAMES

    if impl not in IMPL_NAMES:
        raise ValueError(f"impl={impl!r}; expected one of {IMPL_NAMES}.")
    return impl


def check_dropout_rate(dropout_rate: Any) -> float:
    """Returns ``dropout_rate`` after checking it lies in ``[0, 1)``."""
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)):
        raise TypeError(f"dropout_rate={dropout_rate!r}; expected a number in [0, 1).")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate={dropout_rate!r}; expected a value in [0, 1).")
    return float(dropout_rate)


def scaled_channels(features: int, width_multiplier: float, layer: str) -> int:
    """``int(features * width_multiplier)`` (the MobileNetV1 rule), never zero.

    Raises:
      ValueError: the product rounds down to 0 channels; the message names the
        layer and the width multiplier.
    """
    channels = int(features * width_multiplier)
    if channels < 1:
        raise ValueError(
            f"width_multiplier={width_multiplier} scales {layer} ({features} "
            "channels) to 0 channels; use a larger width_multiplier."
        )
    return channels


def make_divisible(value: float, divisor: int) -> int:
    """Rounds ``value`` to the nearest multiple of ``divisor`` (the MobileNetV2 rule).

    The result is at least ``divisor`` and never more than 10% below ``value``.

    >>> make_divisible(32 * 0.35, 8)
    16
    >>> make_divisible(24 * 0.5, 8)
    16
    """
    divisor = _args.check_positive_int(divisor, "round_to")
    channels = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if channels < 0.9 * value:
        channels += divisor
    return channels


def resolution_from_multiplier(
    resolution_multiplier: float, base_resolution: int = 224
) -> int:
    """Input side ``round(rho * base)`` for the resolution multiplier ``rho``.

    The MobileNet papers apply ``rho`` to the input only: every feature map then
    shrinks by the same factor, and so do the multiply-adds (by ``rho**2``),
    while the parameters stay the same. ``rho`` = 1, 6/7, 5/7, 4/7 gives the
    224, 192, 160 and 128 networks.

    >>> resolution_from_multiplier(6 / 7)
    192
    """
    if isinstance(resolution_multiplier, bool) or not isinstance(
        resolution_multiplier, (int, float)
    ):
        raise TypeError(
            f"resolution_multiplier={resolution_multiplier!r}; expected a number in "
            "(0, 1]."
        )
    base = _args.check_positive_int(base_resolution, "base_resolution")
    side = round(resolution_multiplier * base)
    if not resolution_multiplier > 0 or side < 1:
        raise ValueError(
            f"resolution_multiplier={resolution_multiplier!r} gives an input side of "
            f"{side} from {base}; expected a positive multiplier."
        )
    return int(side)


def check_images(x: jax.Array, model: str) -> None:
    """Raises a ValueError unless ``x`` is a batch of ``(N, H, W, C)`` images."""
    shape = tuple(x.shape)
    if len(shape) != 4 or min(shape, default=0) < 1:
        raise ValueError(
            f"inputs have shape {shape}; {model} expects (N, H, W, C) images, e.g. "
            "(N, 224, 224, 3) or (N, 28, 28, 1)."
        )
    _args.check_floating(x, "inputs")


def _save_reductions(primitive: Any, *_: Any, **__: Any) -> bool:
    """Checkpoint policy: save sums (the batch statistics), recompute the rest."""
    return primitive is lax.reduce_sum_p


class ConvBN(nn.Module):
    """Convolution (standard, depthwise or pointwise), batch norm, activation.

    The convolution has no bias (batch norm supplies the offset). In training
    (``train=True``) batch norm normalises with the batch statistics and updates
    the running averages in the ``batch_stats`` collection; in evaluation it
    uses the running averages and leaves them untouched.

    Attributes:
      kind: 'standard', 'depthwise' or 'pointwise'.
      features: output channels (unused for 'depthwise', which keeps ``C``).
      kernel_size: spatial size of a 'standard' or 'depthwise' kernel.
      strides: stride of the convolution.
      activation: name or callable; ``None`` for a linear output.
      bn_momentum, bn_epsilon: batch-norm running-average momentum and epsilon.
      impl: depthwise implementation.
      dtype: computation dtype.
    """

    kind: str
    features: int | None = None
    kernel_size: int = 3
    strides: int = 1
    activation: str | Activation | None = "relu"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    impl: str = "auto"
    dtype: Any = None

    def __post_init__(self) -> None:
        if self.kind not in CONV_KINDS:
            raise ValueError(f"kind={self.kind!r}; expected one of {CONV_KINDS}.")
        if self.kind != "depthwise":
            _args.check_positive_int(self.features, "features")
        get_activation(self.activation, "activation")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """``(N, H, W, C) -> (N, H / s, W / s, F)`` ('SAME' padding)."""
        if self.kind == "depthwise":
            x = DepthwiseConv(
                kernel_size=(self.kernel_size,) * 2,
                strides=self.strides,
                use_bias=False,
                impl=self.impl,
                dtype=self.dtype,
                name="conv",
            )(x)
        elif self.kind == "pointwise":
            x = PointwiseConv(
                self.features, use_bias=False, dtype=self.dtype, name="conv"
            )(x)
        else:
            x = Conv(
                self.features,
                kernel_size=(self.kernel_size,) * 2,
                strides=self.strides,
                use_bias=False,
                dtype=self.dtype,
                name="conv",
            )(x)
        # In training the batch norm is rematerialised in the backward pass from
        # the convolution output, keeping only its reductions (the batch
        # statistics): the normalised activations are then never written to
        # memory for the backward pass, which recomputes them inside its fused
        # loops. Same values and gradients; about 11% off the separable and 5% off
        # the standard MNIST training step on CPU (docs/performance.md).
        batch_norm = (
            nn.remat(nn.BatchNorm, policy=_save_reductions) if train else nn.BatchNorm
        )
        x = batch_norm(
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype,
            name="bn",
        )(x)
        act = get_activation(self.activation, "activation")
        return act(x) if act is not None else x
