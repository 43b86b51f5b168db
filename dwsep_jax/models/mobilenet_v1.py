"""MobileNetV1 (Howard et al., 2017, arXiv 1704.04861) and its standard-conv twin.

The network is a 3x3 stem convolution followed by depthwise separable blocks
(3x3 depthwise, batch norm, ReLU, 1x1 pointwise, batch norm, ReLU), global
average pooling and a linear classifier. With ``conv_type='standard'`` every
separable block becomes one full 3x3 convolution with the same output channels
and stride, so the two networks share their topology and differ only in how
each block convolves.

At 224x224 with 1000 classes and width multiplier 1.0 the separable network has
4.2M parameters and 569M multiply-adds (Table 4 of the paper); the standard twin
29.3M and 4866M. Output shapes for ``(N, 224, 224, 3)``: stem ``(N, 112, 112, 32)``,
last block ``(N, 7, 7, 1024)``, logits ``(N, classes)``. The small-image layout
:data:`SMALL_BLOCKS` (stem stride 1, three stride-2 blocks) maps a 28x28 or
32x32 input to a 4x4 grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dwsep_jax import _args
from dwsep_jax.layers import Conv, DepthwiseConv, PointwiseConv

#: ``(features, stride)`` of the 13 separable blocks of the ImageNet network.
IMAGENET_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)

#: Blocks for 28x28 / 32x32 inputs: three stride-2 blocks, ending at 4x4.
SMALL_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
)

CONV_TYPES = ("separable", "standard")


def scaled_channels(features: int, width_multiplier: float, layer: str) -> int:
    """``int(features * width_multiplier)``, rejecting a layer scaled to zero."""
    channels = int(features * width_multiplier)
    if channels < 1:
        raise ValueError(
            f"width_multiplier={width_multiplier} scales {layer} ({features} "
            "channels) to 0 channels; use a larger width_multiplier."
        )
    return channels


def check_conv_type(conv_type: str) -> str:
    if conv_type not in CONV_TYPES:
        raise ValueError(f"conv_type={conv_type!r}; expected one of {CONV_TYPES}.")
    return conv_type


def check_width_multiplier(width_multiplier: Any) -> float:
    if isinstance(width_multiplier, bool) or not isinstance(
        width_multiplier, (int, float)
    ):
        raise TypeError(
            f"width_multiplier={width_multiplier!r}; expected a positive number."
        )
    if not width_multiplier > 0:
        raise ValueError(
            f"width_multiplier={width_multiplier!r}; expected a positive number."
        )
    return float(width_multiplier)


class ConvBN(nn.Module):
    """Convolution (standard, depthwise or pointwise), batch norm, activation."""

    kind: str
    features: int | None = None
    kernel_size: int = 3
    strides: int = 1
    activation: Any = nn.relu
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
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
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype,
            name="bn",
        )(x)
        return self.activation(x) if self.activation is not None else x


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (stride) + BN + ReLU, then pointwise 1x1 + BN + ReLU."""

    features: int
    strides: int = 1
    impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = ConvBN(
            "depthwise",
            strides=self.strides,
            impl=self.impl,
            dtype=self.dtype,
            name="depthwise",
        )(x, train=train)
        return ConvBN("pointwise", self.features, dtype=self.dtype, name="pointwise")(
            x, train=train
        )


class StandardBlock(nn.Module):
    """The baseline of :class:`SeparableBlock`: one full 3x3 conv + BN + ReLU."""

    features: int
    strides: int = 1
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return ConvBN(
            "standard",
            self.features,
            strides=self.strides,
            dtype=self.dtype,
            name="conv",
        )(x, train=train)


class MobileNetV1(nn.Module):
    """MobileNetV1 classifier over ``(N, H, W, C)`` images.

    Attributes:
      num_classes: classifier outputs.
      width_multiplier: alpha, scales every layer's channels (``int(F * alpha)``).
      conv_type: 'separable' (MobileNet) or 'standard' (full 3x3 convs).
      blocks: ``(features, stride)`` per block, before width scaling.
      stem_features: channels of the stem conv, before width scaling.
      stem_strides: stride of the stem conv (2 for ImageNet, 1 for small images).
      dropout_rate: dropout before the classifier.
      impl: depthwise implementation passed to :class:`DepthwiseConv`.
      dtype: computation dtype (parameters stay float32).
    """

    num_classes: int = 1000
    width_multiplier: float = 1.0
    conv_type: str = "separable"
    blocks: Sequence[tuple[int, int]] = IMAGENET_BLOCKS
    stem_features: int = 32
    stem_strides: int = 2
    dropout_rate: float = 0.0
    impl: str = "auto"
    dtype: Any = None

    def __post_init__(self) -> None:
        check_conv_type(self.conv_type)
        check_width_multiplier(self.width_multiplier)
        _args.check_positive_int(self.num_classes, "num_classes")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(
                f"dropout_rate={self.dropout_rate!r}; expected a value in [0, 1)."
            )
        scaled_channels(self.stem_features, self.width_multiplier, "the stem")
        for i, (features, _) in enumerate(self.blocks):
            scaled_channels(features, self.width_multiplier, f"block {i}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """``(N, H, W, C)`` images to ``(N, num_classes)`` logits."""
        if x.ndim != 4:
            raise ValueError(
                f"inputs have shape {x.shape}; MobileNetV1 expects (N, H, W, C) images."
            )
        alpha = self.width_multiplier
        x = ConvBN(
            "standard",
            scaled_channels(self.stem_features, alpha, "the stem"),
            strides=self.stem_strides,
            dtype=self.dtype,
            name="stem",
        )(x, train=train)
        for i, (features, strides) in enumerate(self.blocks):
            channels = scaled_channels(features, alpha, f"block {i}")
            if self.conv_type == "separable":
                block = SeparableBlock(
                    channels,
                    strides,
                    impl=self.impl,
                    dtype=self.dtype,
                    name=f"block{i}",
                )
            else:
                block = StandardBlock(
                    channels, strides, dtype=self.dtype, name=f"block{i}"
                )
            x = block(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x)


def mobilenet_v1_small(
    num_classes: int = 10,
    width_multiplier: float = 1.0,
    conv_type: str = "separable",
    **kwargs: Any,
) -> MobileNetV1:
    """MobileNetV1 for 28x28 / 32x32 images: stride-1 stem, :data:`SMALL_BLOCKS`."""
    return MobileNetV1(
        num_classes=num_classes,
        width_multiplier=width_multiplier,
        conv_type=conv_type,
        blocks=SMALL_BLOCKS,
        stem_strides=1,
        **kwargs,
    )
