"""dwsep-jax: depthwise separable convolution in JAX.

The functional core lives in :mod:`dwsep_jax.ops` and is re-exported here;
:mod:`dwsep_jax.convert` ports PyTorch/Keras kernels and :mod:`dwsep_jax.cost`
counts shapes, parameters and multiply-adds.
"""

from dwsep_jax import convert, cost
from dwsep_jax.cost import (
    ConvCost,
    conv_cost,
    conv_output_shape,
    depthwise_cost,
    pointwise_cost,
    separable_cost,
    separable_ratio,
)
from dwsep_jax.ops import (
    ConvGeometry,
    conv,
    depthwise_conv,
    pointwise_conv,
    resolve_geometry,
    separable_conv,
)

__version__ = "0.1.0"

__all__ = [
    "ConvCost",
    "ConvGeometry",
    "conv",
    "conv_cost",
    "conv_output_shape",
    "convert",
    "cost",
    "depthwise_conv",
    "depthwise_cost",
    "pointwise_conv",
    "pointwise_cost",
    "resolve_geometry",
    "separable_conv",
    "separable_cost",
    "separable_ratio",
]
