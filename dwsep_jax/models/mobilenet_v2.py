"""MobileNetV2 (Sandler et al., 2018, arXiv 1801.04381) and its standard-conv twin.

The network is a 3x3 stride-2 stem, a stack of inverted residual blocks, a 1x1
convolution to 1280 channels, global average pooling, dropout and a linear
classifier. An inverted residual block with expansion factor ``t`` maps ``C``
channels to ``F``:

    1x1 expand   C -> t*C, BN, ReLU6      (left out when t == 1)
    3x3 depthwise, stride s, BN, ReLU6
    1x1 project  t*C -> F, BN             (linear bottleneck: no activation)
    + input                               (when s == 1 and C == F)

With ``conv_type='standard'`` the depthwise-separable unit of every block (the
depthwise step and the projection) becomes one full 3x3 convolution ``t*C -> F``
with the same stride, linear and batch-normalised, so the twin keeps the
expansion, the bottleneck width and the residuals.

At 224x224 with 1000 classes and width multiplier 1.0 the separable network has
3.47M convolution and classifier weights and 301M multiply-adds (the paper
reports 3.4M and 300M). Output shapes for ``(N, 224, 224, 3)``: stem
``(N, 112, 112, 32)``, last block ``(N, 7, 7, 320)``, head ``(N, 7, 7, 1280)``,
logits ``(N, classes)``. :func:`mobilenet_v2_small` (stem stride 1, the second
stage at stride 1) maps 28x28 and 32x32 inputs to a 4x4 grid.
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
    make_divisible,
)

#: ``(expansion t, channels c, repeats n, first stride s)`` per stage (Table 2).
IMAGENET_V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

#: Stages for 28x28 / 32x32 inputs: the 24-channel stage keeps stride 1, so with
#: a stride-1 stem three stride-2 stages remain (28 -> 14 -> 7 -> 4).
SMALL_V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, linear projection (1x1), residual if possible.

    ``(N, H, W, C) -> (N, H / s, W / s, F)``; cost
    ``H W C tC + H' W' tC (9 + F)`` multiply-adds (separable), or
    ``H W C tC + H' W' tC F 9`` with ``conv_type='standard'``.

    Attributes:
      features: output channels ``F``.
      expansion: ``t``, hidden width ``t * C``; no expansion conv for ``t == 1``.
      strides: stride of the 3x3 step.
      conv_type: 'separable' or 'standard'.
      activation: activation after the expansion and the 3x3 step (ReLU6).
      bn_momentum, bn_epsilon, impl, dtype: as in :class:`ConvBN`.
    """

    features: int
    expansion: int
    strides: int = 1
    conv_type: str = "separable"
    activation: str | Activation | None = "relu6"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        common = dict(
            bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype
        )
        channels = x.shape[-1]
        h = x
        if self.expansion != 1:
            h = ConvBN(
                "pointwise",
                channels * self.expansion,
                activation=self.activation,
                name="expand",
                **common,
            )(h, train=train)
        if self.conv_type == "separable":
            h = ConvBN(
                "depthwise",
                strides=self.strides,
                activation=self.activation,
                impl=self.impl,
                name="depthwise",
                **common,
            )(h, train=train)
            h = ConvBN(
                "pointwise", self.features, activation=None, name="project", **common
            )(h, train=train)
        else:
            h = ConvBN(
                "standard",
                self.features,
                strides=self.strides,
                activation=None,
                name="conv",
                **common,
            )(h, train=train)
        if self.strides == 1 and channels == self.features:
            h = h + x
        return h


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier over ``(N, H, W, C)`` images.

    Channels scale as ``make_divisible(c * alpha, round_to)``; the 1280-channel
    head is scaled only for ``alpha > 1``, as in the paper. The resolution
    multiplier is the input size itself, as for :class:`MobileNetV1`.

    Attributes:
      num_classes: classifier outputs.
      width_multiplier: alpha, scales every layer's channels.
      conv_type: 'separable' (MobileNetV2) or 'standard' (see module docstring).
      stages: ``(t, c, n, s)`` per stage, before width scaling.
      stem_features: channels of the stem conv, before width scaling.
      stem_strides: stride of the stem (2 for ImageNet, 1 for small images).
      head_features: channels of the last 1x1 conv, before width scaling.
      round_to: channel counts are multiples of this.
      dropout_rate: dropout before the classifier.
      activation: activation of the stem, expansions, 3x3 steps and head.
      bn_momentum, bn_epsilon: batch-norm momentum and epsilon.
      impl: depthwise implementation.
      dtype: computation dtype (parameters stay float32).
    """

    num_classes: int = 1000
    width_multiplier: float = 1.0
    conv_type: str = "separable"
    stages: Sequence[tuple[int, int, int, int]] = IMAGENET_V2_STAGES
    stem_features: int = 32
    stem_strides: int = 2
    head_features: int = 1280
    round_to: int = 8
    dropout_rate: float = 0.2
    activation: str | Activation | None = "relu6"
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-3
    impl: str = "auto"
    dtype: Any = None

    def __post_init__(self) -> None:
        check_classifier_fields(self)
        _args.check_positive_int(self.round_to, "round_to")
        for i, stage in enumerate(self.stages):
            if len(stage) != 4:
                raise ValueError(
                    f"stages[{i}]={stage!r}; expected (expansion, channels, "
                    "repeats, stride)."
                )
            names = ("expansion", "channels", "repeats", "stride")
            for name, value in zip(names, stage):
                _args.check_positive_int(value, f"stages[{i}] {name}")
        super().__post_init__()

    def _channels(self, features: int) -> int:
        return make_divisible(features * self.width_multiplier, self.round_to)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        """``(N, H, W, C)`` images to ``(N, num_classes)`` logits."""
        check_images(x, "MobileNetV2")
        common = dict(
            bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype
        )
        x = ConvBN(
            "standard",
            self._channels(self.stem_features),
            strides=self.stem_strides,
            activation=self.activation,
            name="stem",
            **common,
        )(x, train=train)
        index = 0
        for expansion, features, repeats, strides in self.stages:
            for r in range(repeats):
                x = InvertedResidual(
                    self._channels(features),
                    expansion,
                    strides=strides if r == 0 else 1,
                    conv_type=self.conv_type,
                    activation=self.activation,
                    impl=self.impl,
                    name=f"block{index}",
                    **common,
                )(x, train=train)
                index += 1
        head = self.head_features
        if self.width_multiplier > 1.0:
            head = self._channels(head)
        x = ConvBN(
            "pointwise", head, activation=self.activation, name="head", **common
        )(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(x)


def mobilenet_v2_small(
    num_classes: int = 10,
    width_multiplier: float = 1.0,
    conv_type: str = "separable",
    **kwargs: Any,
) -> MobileNetV2:
    """MobileNetV2 for 28x28 / 32x32 images: stride-1 stem, :data:`SMALL_V2_STAGES`.

    A 28x28 input reaches the head as a 4x4 grid (28, 14, 7, 4), a 32x32 input
    likewise (32, 16, 8, 4).
    """
    return MobileNetV2(
        num_classes=num_classes,
        width_multiplier=width_multiplier,
        conv_type=conv_type,
        stages=SMALL_V2_STAGES,
        stem_strides=1,
        **kwargs,
    )
