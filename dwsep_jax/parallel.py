"""Data parallelism with ``jax.sharding``: one mesh axis, ``data``.

The training loop builds a 1-D :class:`jax.sharding.Mesh` over the devices it
uses, places parameters, optimizer state and batch statistics on every device
(``NamedSharding(mesh, P())``) and splits each batch along its leading axis
(``NamedSharding(mesh, P('data'))``). The train step is an ordinary ``jax.jit``
function with those shardings; XLA inserts the gradient all-reduce, and batch
norm sees the statistics of the whole global batch, so a sharded step computes
the same function as a single-device step (up to the order of float sums).

With one device the mesh has one entry and every placement is a plain copy to
that device.

Several hosts: start every process with the same config and call
``jax.distributed.initialize()`` (on TPU and SLURM/Open MPI clusters it finds
the coordinator itself; otherwise pass ``coordinator_address``, ``num_processes``
and ``process_id``) before any other JAX call. ``jax.devices()`` then lists the
devices of all hosts, the mesh spans them, and :func:`shard_batch` asks each
process only for the rows that its own devices hold. Every process computes the
same global batch order (it is a function of the seed and the epoch), so no
data needs to move between hosts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def data_mesh(
    num_devices: int = 0, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """A 1-D mesh with axis ``'data'`` over the first ``num_devices`` devices.

    Args:
      num_devices: how many devices to use; 0 means all of ``devices``.
      devices: the devices to choose from (default ``jax.devices()``, which spans
        all hosts after ``jax.distributed.initialize``).
    """
    devices = list(jax.devices() if devices is None else devices)
    if not isinstance(num_devices, int) or not 0 <= num_devices <= len(devices):
        raise ValueError(
            f"num_devices={num_devices!r}; expected an integer from 0 (all) to "
            f"{len(devices)}, the number of devices JAX sees."
        )
    chosen = devices[: num_devices or len(devices)]
    return Mesh(np.asarray(chosen), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (batch) axis across ``'data'``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "batch_size") -> None:
    """Raises ``ValueError`` unless ``batch_size`` splits evenly over the mesh."""
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(
            f"{name}={batch_size} does not split over {n} devices; use a multiple "
            f"of {n} (or set train.num_devices)."
        )


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copies every array of ``tree`` onto all devices of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: np.ndarray, mesh: Mesh) -> jax.Array:
    """A global batch ``(B, ...)`` as one array split over ``'data'``.

    ``batch`` is the whole global batch as every process sees it; each process
    transfers only the rows of the devices it owns.
    """
    check_batch_size(batch.shape[0], mesh, "batch size")
    return jax.make_array_from_callback(
        batch.shape, batch_sharded(mesh), lambda index: batch[index]
    )
