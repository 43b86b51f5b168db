"""Training checkpoints on orbax's ``CheckpointManager``.

Each checkpoint is a step folder ``DIR/<step>/`` with two items:

* ``state``: the array pytree (parameters, optimizer state, batch statistics,
  step counter), written with ``StandardSave``; sharded arrays are written by
  the processes that hold them and restored onto the shardings of a template;
* ``meta``: JSON with whatever the loop needs to continue exactly where it was
  (the config, the metric history, step times).

Orbax writes into a temporary folder and renames it when complete, so a process
killed mid-save leaves the previous checkpoint as the latest one. Saves run in
a background thread; :meth:`TrainCheckpoints.close` waits for them.

Starting a run in a folder that already holds checkpoints is refused unless the
caller asks to resume or to overwrite, so a new (possibly failing) run never
replaces the checkpoints of an earlier one by accident.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint folder is missing, already in use, or does not fit the run."""


def has_checkpoints(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds at least one complete step folder."""
    directory = Path(directory)
    return directory.is_dir() and any(
        p.is_dir() and p.name.isdigit() for p in directory.iterdir()
    )


def check_free(directory: str | os.PathLike) -> None:
    """Raises :class:`CheckpointError` if ``directory`` already holds checkpoints."""
    directory = Path(directory).absolute()
    if has_checkpoints(directory):
        raise CheckpointError(
            f"checkpoint directory {directory} already holds checkpoints; "
            "resume them (--resume) or discard them (--overwrite), or "
            "choose another output folder."
        )


class TrainCheckpoints:
    """Periodic checkpoints of one training run in ``directory``.

    Args:
      directory: the run's checkpoint folder.
      save_every: save when the step is a multiple of this (>= 1); the final
        step is saved with ``force=True``.
      max_to_keep: how many of the newest checkpoints to keep (>= 1).
      resume: continue from the folder's checkpoints; the folder must exist.
      overwrite: delete the folder's checkpoints before starting. Without
        ``resume`` or ``overwrite`` a folder that holds checkpoints is refused.

    Raises:
      CheckpointError: ``resume`` with a missing folder, checkpoints present
        without ``resume``/``overwrite``, or the path is a file.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        save_every: int,
        max_to_keep: int = 2,
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        if not isinstance(save_every, int) or save_every < 1:
            raise ValueError(f"save_every={save_every!r}; expected an integer >= 1.")
        if not isinstance(max_to_keep, int) or max_to_keep < 1:
            raise ValueError(f"max_to_keep={max_to_keep!r}; expected an integer >= 1.")
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other; pass one.")
        directory = Path(directory).absolute()
        if directory.exists() and not directory.is_dir():
            raise CheckpointError(f"checkpoint path {directory} is not a directory.")
        if resume and not directory.is_dir():
            raise CheckpointError(
                f"cannot resume: checkpoint directory {directory} does not exist."
            )
        if not resume and has_checkpoints(directory):
            if not overwrite:
                check_free(directory)
            logger.warning("deleting the checkpoints in %s (overwrite)", directory)
            shutil.rmtree(directory)

        self.directory = directory
        self._manager = ocp.CheckpointManager(
            directory,
            options=ocp.CheckpointManagerOptions(
                save_interval_steps=save_every,
                max_to_keep=max_to_keep,
                create=True,
                cleanup_tmp_directories=True,
            ),
            item_names=("state", "meta"),
        )

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or ``None`` if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def due(self, step: int, *, final: bool = False) -> bool:
        """Whether :meth:`save` at ``step`` would write (``final`` forces it)."""
        if final:
            return step != self.latest_step()
        return self._manager.should_save(step)

    def save(
        self, step: int, state: Any, meta: dict[str, Any], *, force: bool = False
    ) -> bool:
        """Saves ``state`` (array pytree) and ``meta`` (JSON) if ``step`` is due.

        Returns whether a save was started (it finishes in the background).
        """
        return self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=force,
        )

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON ``meta`` item of checkpoint ``step`` (the latest if ``None``)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint to restore in {self.directory}.")
        restored = self._manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
        )
        return dict(restored["meta"])

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
        """``(state, meta)`` of checkpoint ``step`` (the latest if ``None``).

        ``template`` is a pytree of arrays (or ``jax.ShapeDtypeStruct``) with the
        structure, shapes, dtypes and shardings to restore onto.

        Raises:
          CheckpointError: there is no checkpoint, or it does not match the
            template.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint to restore in {self.directory}.")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"checkpoint {self.directory / str(step)} does not fit this run's "
                f"model and optimizer: {err}"
            ) from err
        state = restored["state"]
        got = jax.tree_util.tree_flatten_with_path(state)[0]
        for (path, array), want in zip(got, jax.tree.leaves(abstract)):
            if array.shape != want.shape or array.dtype != want.dtype:
                raise CheckpointError(
                    f"checkpoint {self.directory / str(step)} does not fit this "
                    f"run's model and optimizer: {jax.tree_util.keystr(path)} is "
                    f"{array.dtype}{list(array.shape)}, expected "
                    f"{want.dtype}{list(want.shape)}."
                )
        return state, dict(restored["meta"])

    def wait(self) -> None:
        """Blocks until background saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> TrainCheckpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
