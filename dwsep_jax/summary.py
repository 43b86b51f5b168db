"""Per-layer shapes, parameters and multiply-adds, read off a Flax linen module.

The summary traces the model with ``jax.eval_shape`` (nothing is computed, so a
224x224 network costs a trace, not a forward pass) and intercepts every module
call. Each module that owns parameters directly becomes a row with its output
shape and its parameter count. For a module with a kernel ``W`` whose output has
``P`` positions per example (``prod(S')`` for a conv, 1 for a dense layer), the
multiply-adds are ``P * W.size``::

    depthwise (*K, 1, C*M)    prod(S') * C * M * prod(K)
    pointwise (C, F)          prod(S) * C * F
    standard  (*K, C/G, F)    prod(S') * (C/G) * F * prod(K)
    dense     (C, F)          C * F

Biases, batch norm, activations, residual additions and pooling are not counted
as multiply-adds, following the MobileNet papers. Batch-norm scales, offsets and
running statistics are counted apart from the weights, as ``bn_params``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dwsep_jax import _args


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One module call: its path in the parameter tree, type, output and cost.

    Attributes:
      path: '/'-joined module path, e.g. ``'block3/depthwise/conv'``.
      kind: the module's class name.
      output_shape: output shape of one example (batch axis dropped).
      params: entries of the parameters the module owns directly.
      macs: multiply-adds of this call for one example.
    """

    path: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """Per-layer rows and totals for one example.

    Attributes:
      input_shape: shape of one example.
      rows: parameter-owning module calls, in call order (batch norm excluded).
      params: convolution and dense weights and biases (batch norm excluded).
      macs: multiply-adds per example.
      bn_params: batch-norm scale, offset, mean and variance entries.
    """

    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    params: int
    macs: int
    bn_params: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: totals under ``params``, ``macs``, ``bn_params``."""
        return {
            "input_shape": list(self.input_shape),
            "params": self.params,
            "macs": self.macs,
            "bn_params": self.bn_params,
            "layers": [
                {**dataclasses.asdict(r), "output_shape": list(r.output_shape)}
                for r in self.rows
            ],
        }


def _size(tree: Any) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def _lookup(tree: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _own_leaves(tree: Any) -> dict[str, Any]:
    """Parameters held directly by a module (not by its submodules)."""
    if not isinstance(tree, Mapping):
        return {}
    return {k: v for k, v in tree.items() if hasattr(v, "shape")}


def model_summary(
    model: nn.Module, input_shape: Sequence[int], **call_kwargs: Any
) -> Summary:
    """Summarises ``model`` applied to one example of ``input_shape``.

    Args:
      model: a linen module taking a batch ``(1, *input_shape)``.
      input_shape: shape of one example, without the batch axis, e.g.
        ``(224, 224, 3)``.
      **call_kwargs: passed to ``init`` and ``apply`` (e.g. ``train=False``).

    Returns:
      A :class:`Summary` with per-example multiply-adds. A module called twice
      (weight sharing) gives two rows; the ``params`` total counts its weights
      once.
    """
    input_shape = tuple(input_shape)
    for i, d in enumerate(input_shape):
        if not _args.is_int(d) or d < 1:
            raise ValueError(
                f"input_shape={input_shape} holds {d!r} at position {i}; expected "
                "positive ints, the shape of one example without the batch axis."
            )
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    variables = jax.eval_shape(
        lambda inp: model.init(jax.random.key(0), inp, **call_kwargs), x
    )
    params = variables.get("params", {})
    rows: list[LayerRow] = []
    bn_paths: set[tuple[str, ...]] = set()

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__":
            return out
        path = tuple(module.path)
        if isinstance(module, nn.BatchNorm):
            bn_paths.add(path)
            return out
        own = _own_leaves(_lookup(params, path))
        if not own or not hasattr(out, "shape"):
            return out
        kernel = own.get("kernel")
        macs = 0
        if kernel is not None and kernel.shape:
            positions = math.prod(out.shape) // kernel.shape[-1]
            macs = positions * math.prod(kernel.shape)
        rows.append(
            LayerRow(
                path="/".join(path),
                kind=type(module).__name__,
                output_shape=tuple(out.shape[1:]),
                params=_size(own),
                macs=int(macs),
            )
        )
        return out

    with nn.intercept_methods(interceptor):
        jax.eval_shape(lambda v, inp: model.apply(v, inp, **call_kwargs), variables, x)

    bn_weights = sum(_size(_lookup(params, p)) for p in bn_paths)
    bn_params = _size(variables.get("batch_stats", {})) + bn_weights
    return Summary(
        input_shape=input_shape,
        rows=tuple(rows),
        params=_size(params) - bn_weights,
        macs=sum(r.macs for r in rows),
        bn_params=bn_params,
    )


def format_summary(summary: Summary) -> str:
    """Markdown table of the per-layer rows and the totals."""
    lines = [
        "| layer | type | output shape | params | MACs |",
        "|---|---|---|---:|---:|",
    ]
    for r in summary.rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"| {r.path} | {r.kind} | {shape} | {r.params:,} | {r.macs:,} |")
    lines.append(f"| **total** | | | {summary.params:,} | {summary.macs:,} |")
    lines.append(
        f"\ninput {'x'.join(str(d) for d in summary.input_shape)}; batch-norm "
        f"parameters and statistics (not in the total): {summary.bn_params:,}"
    )
    return "\n".join(lines)
