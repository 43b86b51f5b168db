"""Argument normalisation and validation shared by the functional core.

Everything here runs on static Python values and array shapes, so every error is
raised before JAX traces anything into XLA. Messages name the argument, the
value that was given and what was expected.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

PaddingLike = str | int | Sequence[int] | Sequence[tuple[int, int]]

#: Padding strings that are resolved into explicit zero padding.
ZERO_PAD_MODES = ("SAME", "VALID", "CAUSAL")
#: Padding strings that pad with 'SAME' amounts, filled from the input itself.
FILL_PAD_MODES = {"REFLECT": "reflect", "CIRCULAR": "wrap", "EDGE": "edge"}

_LAYOUTS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
_LAYOUTS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_KERNEL_LAYOUTS = {1: "WIO", 2: "HWIO", 3: "DHWIO"}


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for bools and floats."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def to_tuple(
    value: int | Sequence[int], num_spatial: int, name: str, *, minimum: int = 1
) -> tuple[int, ...]:
    """Expands an int or a per-axis sequence into a tuple of ``num_spatial`` ints.

    Args:
      value: an int (used for every spatial axis) or a sequence of
        ``num_spatial`` ints.
      num_spatial: number of spatial dimensions.
      name: argument name, used in error messages.
      minimum: smallest accepted value of each entry.

    Raises:
      TypeError: an entry is not an integer.
      ValueError: the sequence has the wrong length or an entry is too small.
    """
    if is_int(value):
        values = (int(value),) * num_spatial
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) != num_spatial:
            raise ValueError(
                f"{name}={value!r} has {len(values)} entries; expected an int or a "
                f"sequence of {num_spatial} ints, one per spatial axis."
            )
        for v in values:
            if not is_int(v):
                raise TypeError(
                    f"{name}={value!r} holds {v!r} of type {type(v).__name__}; "
                    "expected integers."
                )
        values = tuple(int(v) for v in values)
    else:
        raise TypeError(
            f"{name}={value!r} of type {type(value).__name__}; expected an int or a "
            f"sequence of {num_spatial} ints."
        )
    for v in values:
        if v < minimum:
            raise ValueError(
                f"{name}={value!r} holds {v}; every entry must be >= {minimum}."
            )
    return values


def check_positive_int(value: Any, name: str, hint: str = "") -> int:
    """Returns ``value`` as an int after checking it is a positive integer."""
    if not is_int(value):
        raise TypeError(
            f"{name}={value!r} of type {type(value).__name__}; expected a positive "
            f"integer.{hint}"
        )
    if value < 1:
        raise ValueError(f"{name}={value!r}; expected a positive integer.{hint}")
    return int(value)


def layout_strings(num_spatial: int, channels_first: bool) -> tuple[str, str, str]:
    """Dimension-number strings ``(lhs, rhs, out)`` for ``lax.conv_general_dilated``.

    The kernel layout is always spatial-first, then input, then output features
    (``WIO``, ``HWIO``, ``DHWIO``), whatever the activation layout.
    """
    table = _LAYOUTS_FIRST if channels_first else _LAYOUTS_LAST
    lhs = table[num_spatial]
    return lhs, _KERNEL_LAYOUTS[num_spatial], lhs


def parse_data_format(data_format: str | None, num_spatial: int) -> bool:
    """Returns True for a channels-first layout.

    Accepts ``None`` / ``'channels_last'`` / ``'channels_first'`` and the explicit
    layout strings (``'NWC'``, ``'NCW'``, ``'NHWC'``, ``'NCHW'``, ``'NDHWC'``,
    ``'NCDHW'``) whose rank must agree with ``num_spatial``.
    """
    if data_format is None or data_format == "channels_last":
        return False
    if data_format == "channels_first":
        return True
    if isinstance(data_format, str):
        if data_format == _LAYOUTS_LAST.get(num_spatial):
            return False
        if data_format == _LAYOUTS_FIRST.get(num_spatial):
            return True
    expected = (
        f"'channels_last', 'channels_first', '{_LAYOUTS_LAST[num_spatial]}' or "
        f"'{_LAYOUTS_FIRST[num_spatial]}'"
    )
    raise ValueError(
        f"data_format={data_format!r} is not valid for a {num_spatial}-D kernel; "
        f"expected {expected}."
    )


def check_floating(x: Any, name: str) -> None:
    """Raises TypeError unless ``x`` is an array with a floating-point dtype."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(
            f"{name} is a {type(x).__name__}; expected an array (jax.Array or "
            "numpy.ndarray) with a floating-point dtype."
        )
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name} has dtype {dtype}; expected a floating-point array "
            "(bfloat16, float16, float32 or float64)."
        )


def split_input(
    shape: tuple[int, ...], num_spatial: int, channels_first: bool, name: str
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Splits an input shape into ``(batch_shape, spatial_shape, channels)``.

    An input has ``num_spatial + 1`` feature axes (spatial and channel) after any
    number of leading batch axes, including none.
    """
    if len(shape) < num_spatial + 1:
        layout = (_LAYOUTS_FIRST if channels_first else _LAYOUTS_LAST)[num_spatial]
        raise ValueError(
            f"{name} has shape {shape} (rank {len(shape)}); a {num_spatial}-D "
            f"convolution expects rank >= {num_spatial + 1}: optional batch axes "
            f"then {layout[1:]} ({layout} with one batch axis)."
        )
    batch = shape[: len(shape) - num_spatial - 1]
    feat = shape[len(shape) - num_spatial - 1 :]
    if channels_first:
        return batch, feat[1:], feat[0]
    return batch, feat[:-1], feat[-1]


def effective_kernel(kernel_size: Sequence[int], dilation: Sequence[int]) -> tuple:
    """Spatial extent of a dilated kernel: ``(k - 1) * d + 1`` per axis."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow/Keras 'SAME' split: output ``ceil(size / stride)``, extra pad high.

    >>> same_padding(224, 3, 2, 1)
    (0, 1)
    >>> same_padding(224, 7, 2, 1)
    (2, 3)
    """
    eff = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: PaddingLike,
    spatial: Sequence[int],
    kernel_size: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[tuple[int, int], ...], str]:
    """Turns any accepted padding into explicit ``(low, high)`` pairs and a fill mode.

    Args:
      padding: ``'SAME'`` (TensorFlow split, extra at the end), ``'VALID'``,
        ``'CAUSAL'`` (all padding at the start of each axis, for sequences),
        ``'REFLECT'`` / ``'CIRCULAR'`` / ``'EDGE'`` ('SAME' amounts filled from the
        input), an int, a sequence of per-axis ints, or per-axis ``(low, high)``
        pairs.
      spatial: input spatial sizes.
      kernel_size, strides, dilation: per-axis kernel geometry.

    Returns:
      ``(pairs, mode)`` where ``mode`` is ``'constant'`` or a ``jnp.pad`` mode.
    """
    n = len(spatial)
    if isinstance(padding, str):
        key = padding.upper()
        if key in ("SAME", *FILL_PAD_MODES):
            pairs = tuple(
                same_padding(s, k, st, d)
                for s, k, st, d in zip(spatial, kernel_size, strides, dilation)
            )
            return pairs, FILL_PAD_MODES.get(key, "constant")
        if key == "VALID":
            return ((0, 0),) * n, "constant"
        if key == "CAUSAL":
            eff = effective_kernel(kernel_size, dilation)
            return tuple((e - 1, 0) for e in eff), "constant"
        raise ValueError(
            f"padding={padding!r} is not a known padding; expected one of 'SAME', "
            "'VALID', 'CAUSAL', 'REFLECT', 'CIRCULAR', 'EDGE', an int, per-axis ints "
            "or per-axis (low, high) pairs."
        )
    if is_int(padding):
        if padding < 0:
            raise ValueError(f"padding={padding!r}; expected a non-negative int.")
        return ((int(padding), int(padding)),) * n, "constant"
    if isinstance(padding, Sequence):
        entries = tuple(padding)
        if len(entries) != n:
            raise ValueError(
                f"padding={padding!r} has {len(entries)} entries; expected {n}, one "
                "per spatial axis."
            )
        pairs = []
        for entry in entries:
            if is_int(entry):
                pair = (int(entry), int(entry))
            elif (
                isinstance(entry, Sequence)
                and len(entry) == 2
                and all(is_int(e) for e in entry)
            ):
                pair = (int(entry[0]), int(entry[1]))
            else:
                raise ValueError(
                    f"padding={padding!r} holds {entry!r}; expected per-axis ints or "
                    "(low, high) pairs of ints."
                )
            if min(pair) < 0:
                raise ValueError(
                    f"padding={padding!r} holds {entry!r}; padding must be >= 0."
                )
            pairs.append(pair)
        return tuple(pairs), "constant"
    raise TypeError(
        f"padding={padding!r} of type {type(padding).__name__}; expected a string, "
        "an int or a sequence."
    )


def output_size(
    size: int, pad: tuple[int, int], kernel: int, stride: int, dilation: int
) -> int:
    """Output length of one axis after explicit padding ``pad``."""
    eff = (kernel - 1) * dilation + 1
    return (size + pad[0] + pad[1] - eff) // stride + 1


def check_output_not_empty(
    name: str,
    spatial: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    kernel_size: Sequence[int],
    dilation: Sequence[int],
) -> None:
    """Raises if a padded input is smaller than the dilated kernel on any axis."""
    eff = effective_kernel(kernel_size, dilation)
    for axis, (s, p, e) in enumerate(zip(spatial, pairs, eff)):
        if s + p[0] + p[1] < e:
            raise ValueError(
                f"{name} spatial axis {axis} has size {s} (padded {s + p[0] + p[1]}), "
                f"smaller than the dilated kernel extent {e} (kernel_size "
                f"{tuple(kernel_size)}, dilation {tuple(dilation)}); the output would "
                "be empty. Use a larger input, 'SAME' padding or a smaller "
                "kernel/dilation."
            )


def prod(values: Sequence[int]) -> int:
    """Product of a sequence of ints (1 for an empty sequence)."""
    return int(math.prod(values))


def as_numpy_shape(x: Any) -> tuple[int, ...]:
    """Shape of an array-like without materialising it on device."""
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else np.shape(x)


_PRECISIONS = (
    None,
    "default",
    "high",
    "highest",
    "bfloat16",
    "tensorfloat32",
    "float32",
)


def check_precision(precision: Any) -> None:
    """Raises unless ``precision`` is something ``lax`` accepts.

    Accepted: ``None``, a ``lax.Precision``, one of the strings ``lax`` knows,
    or a pair of those (one per operand).
    """
    from jax import lax

    def ok(p: Any) -> bool:
        return isinstance(p, lax.Precision) or p in _PRECISIONS

    if ok(precision):
        return
    if (
        isinstance(precision, (tuple, list))
        and len(precision) == 2
        and all(ok(p) and p is not None for p in precision)
    ):
        return
    raise ValueError(
        f"precision={precision!r}; expected None, a jax.lax.Precision, one of "
        f"{[p for p in _PRECISIONS if p]} or a pair of those."
    )
