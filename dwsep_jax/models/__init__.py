"""MobileNet-style classifiers with a separable / standard ``conv_type`` switch."""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from dwsep_jax.models.mobilenet_v1 import (
    CONV_TYPES,
    IMAGENET_BLOCKS,
    SMALL_BLOCKS,
    MobileNetV1,
    mobilenet_v1_small,
)

MODELS = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v1_small": mobilenet_v1_small,
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
    "MODELS",
    "SMALL_BLOCKS",
    "MobileNetV1",
    "build_model",
    "mobilenet_v1_small",
]
