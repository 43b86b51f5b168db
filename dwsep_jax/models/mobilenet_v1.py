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
from dwsep_jax.activations import Activation
from dwsep_jax.models.blocks import (
    ConvBN,
    check_classifier_fields,
    check_images,
    scaled_channels,
)

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


class SeparableBlock(nn.Module):
    """Depthwise 3x3 (stride) + BN + activation, then 1x1 pointwise + BN + activation.

    ``(N, H, W, C) -> (N, H / s, W / s, F)``; cost ``H' W' C (9 + F)``
    multiply-adds.
    """

    features: int
    strides: int = 1
    activation: str | Activation | None = "relu"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon)
        x = ConvBN(
            "depthwise",
            strides=self.strides,
            activation=self.activation,
            impl=self.impl,
            dtype=self.dtype,
            name="depthwise",
            **bn,
        )(x, train=train)
        return ConvBN(
            "pointwise",
            self.features,
            activation=self.activation,
            dtype=self.dtype,
            name="pointwise",
            **bn,
        )(x, train=train)


class StandardBlock(nn.Module):
    """The baseline of :class:`SeparableBlock`: one full 3x3 conv + BN + activation.

    Same output channels and stride; cost ``H' W' C F 9`` multiply-adds.
    """

    features: int
    strides: int = 1
    activation: str | Activation | None = "relu"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return ConvBN(
            "standard",
            self.features,
            strides=self.strides,
            activation=self.activation,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype,
            name="conv",
        )(x, train=train)


class MobileNetV1(nn.Module):
    """MobileNetV1 classifier over ``(N, H, W, C)`` images.

    The resolution multiplier ``rho`` of the paper is the input size itself
    (``224 * rho``, see :func:`dwsep_jax.models.resolution_from_multiplier`): the
    network is fully convolutional up to a global average pool, so any
    ``H, W >= 1`` works and the multiply-adds scale with ``H * W``.

    Attributes:
      num_classes: classifier outputs.
      width_multiplier: alpha, scales every layer's channels (``int(F * alpha)``).
      conv_type: 'separable' (MobileNet) or 'standard' (full 3x3 convs).
      blocks: ``(features, stride)`` per block, before width scaling.
      stem_features: channels of the stem conv, before width scaling.
      stem_strides: stride of the stem conv (2 for ImageNet, 1 for small images).
      dropout_rate: dropout before the classifier (active with ``train=True``,
        which then needs a ``'dropout'`` rng).
      activation: activation after every batch norm (name or callable).
      bn_momentum, bn_epsilon: batch-norm running-average momentum and epsilon.
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
    activation: str | Activation | None = "relu"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    impl: str = "auto"
    dtype: Any = None

    def __post_init__(self) -> None:
        check_classifier_fields(self)
        scaled_channels(self.stem_features, self.width_multiplier, "the stem")
        for i, (features, strides) in enumerate(self.blocks):
            scaled_channels(features, self.width_multiplier, f"block {i}")
            _args.check_positive_int(strides, f"blocks[{i}] stride")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """``(N, H, W, C)`` images to ``(N, num_classes)`` logits."""
        check_images(x, "MobileNetV1")
        alpha = self.width_multiplier
        common = dict(
            activation=self.activation,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
            dtype=self.dtype,
        )
        x = ConvBN(
            "standard",
            scaled_channels(self.stem_features, alpha, "the stem"),
            strides=self.stem_strides,
            name="stem",
            **common,
        )(x, train=train)
        for i, (features, strides) in enumerate(self.blocks):
            channels = scaled_channels(features, alpha, f"block {i}")
            if self.conv_type == "separable":
                block = SeparableBlock(
                    channels, strides, impl=self.impl, name=f"block{i}", **common
                )
            else:
                block = StandardBlock(channels, strides, name=f"block{i}", **common)
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
    """MobileNetV1 for 28x28 / 32x32 images: stride-1 stem, :data:`SMALL_BLOCKS`.

    A 28x28 input reaches the classifier as a 4x4 grid (28, 14, 7, 4), a 32x32
    input likewise (32, 16, 8, 4).
    """
    return MobileNetV1(
        num_classes=num_classes,
        width_multiplier=width_multiplier,
        conv_type=conv_type,
        blocks=SMALL_BLOCKS,
        stem_strides=1,
        **kwargs,
    )
