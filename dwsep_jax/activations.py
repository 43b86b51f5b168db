"""Activation lookup by name, so configs and modules can name an activation."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]

ACTIVATIONS: dict[str, Activation | None] = {
    "linear": None,
    "none": None,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "hard_swish": jax.nn.hard_swish,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}


def get_activation(
    activation: str | Activation | None, name: str = "activation"
) -> Activation | None:
    """Resolves an activation given as ``None``, a callable or a name.

    Args:
      activation: ``None`` (identity), a callable, or one of the names in
        :data:`ACTIVATIONS` (case-insensitive).
      name: the argument's name, used in the error message.

    Raises:
      ValueError: an unknown name.
      TypeError: neither ``None``, a string nor a callable.
    """
    if activation is None:
        return None
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(
                f"{name}={activation!r} is not a known activation; expected one of "
                f"{sorted(ACTIVATIONS)} or a callable."
            )
        return ACTIVATIONS[key]
    if callable(activation):
        return activation
    raise TypeError(
        f"{name}={activation!r} of type {type(activation).__name__}; expected None, "
        "an activation name or a callable."
    )
