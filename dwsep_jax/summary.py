"""Per-layer shapes, parameters and multiply-adds, read off a Flax module.

The summary traces the model once with ``jax.eval_shape`` (nothing is computed)
and intercepts every layer that owns a ``kernel``. For a layer with kernel ``W``
whose output has ``P`` positions per example (``prod(S')`` for a conv, 1 for a
dense layer), the multiply-adds per example are ``P * W.size``: for a depthwise
kernel ``(*K, 1, C*M)`` that is ``prod(S') * C * M * prod(K)``, for a standard
kernel ``(*K, C, F)`` it is ``prod(S') * C * F * prod(K)``. Batch-norm scale,
offset and running statistics are counted apart, as ``bn_params``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One layer: its path in the parameter tree, type, output shape and cost."""

    path: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """Per-layer rows and totals for one example (batch size 1).

    Attributes:
      rows: kernel-bearing layers in call order.
      params: convolution and dense weights and biases.
      macs: multiply-adds per example.
      bn_params: batch-norm scale, offset, mean and variance entries.
    """

    rows: tuple[LayerRow, ...]
    params: int
    macs: int
    bn_params: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "bn_params": self.bn_params,
            "layers": [dataclasses.asdict(r) for r in self.rows],
        }


def _size(tree: Any) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def model_summary(
    model: nn.Module, input_shape: Sequence[int], **call_kwargs: Any
) -> Summary:
    """Summarises ``model`` applied to one example of ``input_shape``.

    Args:
      model: a linen module.
      input_shape: shape of one example, without the batch axis, e.g.
        ``(224, 224, 3)``.
      **call_kwargs: passed to the model call (e.g. ``train=False``).

    Returns:
      A :class:`Summary` with per-example multiply-adds.
    """
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    variables = jax.eval_shape(
        lambda inp: model.init(jax.random.key(0), inp, **call_kwargs), x
    )
    params = variables.get("params", {})
    rows: list[LayerRow] = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__" or isinstance(module, nn.BatchNorm):
            return out
        own = _lookup(params, module.path)
        kernel = own.get("kernel") if isinstance(own, dict) else None
        if kernel is None or not hasattr(out, "shape"):
            return out
        positions = math.prod(out.shape) // kernel.shape[-1]
        own_params = sum(
            math.prod(v.shape) for v in own.values() if hasattr(v, "shape")
        )
        rows.append(
            LayerRow(
                path="/".join(module.path),
                kind=type(module).__name__,
                output_shape=tuple(out.shape[1:]),
                params=int(own_params),
                macs=int(positions * math.prod(kernel.shape)),
            )
        )
        return out

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda v, inp: model.apply(v, inp, **call_kwargs), variables, x)

    bn_params = _size(variables.get("batch_stats", {})) + _size(_bn_params(params))
    total_params = _size(params) - _size(_bn_params(params))
    return Summary(
        rows=tuple(rows),
        params=total_params,
        macs=sum(r.macs for r in rows),
        bn_params=bn_params,
    )


def _lookup(tree: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _bn_params(params: Any) -> list[Any]:
    """Scale and bias leaves of batch-norm layers (named ``bn`` or ``BatchNorm_*``)."""
    found = []

    def walk(tree: Any, name: str) -> None:
        if not isinstance(tree, dict):
            return
        if name == "bn" or name.startswith("BatchNorm"):
            found.extend(jax.tree_util.tree_leaves(tree))
            return
        for key, value in tree.items():
            walk(value, key)

    walk(params, "")
    return found


def format_summary(summary: Summary) -> str:
    """Markdown table of the per-layer rows and totals."""
    lines = [
        "| layer | type | output shape | params | MACs |",
        "|---|---|---|---:|---:|",
    ]
    for r in summary.rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"| {r.path} | {r.kind} | {shape} | {r.params:,} | {r.macs:,} |")
    lines.append(f"| **total** | | | {summary.params:,} | {summary.macs:,} |")
    lines.append(f"\nbatch-norm parameters and statistics: {summary.bn_params:,}")
    return "\n".join(lines)
