"""MobileNet-style classifiers with a separable / standard ``conv_type`` switch.

Every registered model is built as ``build_model(name, num_classes=...,
width_multiplier=..., conv_type=..., dropout_rate=..., impl=...)`` and called as
``model.init(key, x, train=False)`` / ``model.apply(variables, x, train=True,
rngs={'dropout': key}, mutable=['batch_stats'])`` on ``(N, H, W, C)`` images.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from dwsep_jax.models.blocks import (
    CONV_TYPES,
    ConvBN,
    make_divisible,
    resolution_from_multiplier,
    scaled_channels,
)
from dwsep_jax.models.mobilenet_v1 import (
    IMAGENET_BLOCKS,
    SMALL_BLOCKS,
    MobileNetV1,
    mobilenet_v1_small,
)
from dwsep_jax.models.mobilenet_v2 import (
    IMAGENET_V2_STAGES,
    SMALL_V2_STAGES,
    InvertedResidual,
    MobileNetV2,
    mobilenet_v2_small,
)

#: Model constructors by name; ``*_small`` variants suit 28x28 / 32x32 images.
MODELS = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v1_small": mobilenet_v1_small,
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v2_small": mobilenet_v2_small,
}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Builds a registered model by name, e.g. ``build_model('mobilenet_v1')``."""
    if name not in MODELS:
        raise ValueError(
            f"model name {name!r} is unknown; expected one of {sorted(MODELS)}."
        )
    return MODELS[name](**kwargs)


__all__ = [
    "CONV_TYPES",
    "IMAGENET_BLOCKS",
    "IMAGENET_V2_STAGES",
    "MODELS",
    "SMALL_BLOCKS",
    "SMALL_V2_STAGES",
    "ConvBN",
    "InvertedResidual",
    "MobileNetV1",
    "MobileNetV2",
    "build_model",
    "make_divisible",
    "mobilenet_v1_small",
    "mobilenet_v2_small",
    "resolution_from_multiplier",
    "scaled_channels",
]
