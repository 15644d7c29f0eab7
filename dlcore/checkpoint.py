"""Resumable checkpoints through Orbax.

Usage::

  ckpt = Checkpointer(workdir / "checkpoints")
  ckpt.save(step, state, meta={"epoch": 3})
  restored = ckpt.restore_latest(state)  # None, or (state, meta)

Orbax writes each checkpoint under a temporary name and renames it when
complete, so a crash never leaves a half-written checkpoint. ``save`` is
asynchronous: it copies the arrays to host memory and returns while a
background thread writes them, so training continues (and may donate the
state's buffers); the next ``save`` and ``close`` wait for the write.
Only the newest ``max_to_keep`` checkpoints are kept.
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """A thin wrapper over ``orbax.checkpoint.CheckpointManager``."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3):
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=True))

  def save(self, step: int, state: Any, meta: dict[str, Any] | None = None):
    """Starts saving ``state`` (any pytree) and JSON ``meta`` as checkpoint ``step``."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        meta=ocp.args.JsonSave(meta or {})))

  def wait(self):
    """Blocks until every started save is on disk."""
    self._manager.wait_until_finished()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore_latest(self, like: Any = None) -> tuple[Any, dict[str, Any]] | None:
    """The latest ``(state, meta)``; or None when there is no checkpoint.

    ``state`` takes the structure of ``like`` (e.g. a fresh train state);
    without ``like`` it comes back as saved: nested dicts of numpy arrays.
    """
    step = self._manager.latest_step()
    if step is None:
      return None
    abstract = (None if like is None else
                jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def close(self):
    """Finishes the saves in flight and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
