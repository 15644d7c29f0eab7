"""Resumable checkpoints through Orbax, sealed with checksums.

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

Before the rename, the SHA-256 of every file written goes into
``checksums.json`` inside the checkpoint, so the seal is committed with the
data. ``restore_latest`` verifies it and restores the newest intact
checkpoint: one with a missing, cut or altered file (or, unsealed, one that
cannot be read) is moved to ``damaged_checkpoints/`` beside the checkpoint
directory, never deleted, with a line on stderr saying why.
"""

import errno
import hashlib
import json
import logging
import os
import pathlib
import shutil
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from dlcore.errors import ConfigError

CHECKSUMS_FILE = "checksums.json"
DAMAGED_DIR = "damaged_checkpoints"
# Orbax rewrites its step metadata (commit time) after the seal is written.
UNSEALED = (CHECKSUMS_FILE, "_CHECKPOINT_METADATA", "commit_success.txt")


def file_checksums(directory: pathlib.Path) -> dict[str, str]:
  """``{relative path: sha256 hex}`` of the files under ``directory`` (but ``UNSEALED``)."""
  sums = {}
  for path in sorted(directory.rglob("*")):
    name = path.relative_to(directory).as_posix()
    if path.is_file() and name not in UNSEALED:
      with open(path, "rb") as f:
        sums[name] = hashlib.file_digest(f, "sha256").hexdigest()
  return sums


def damage(directory: pathlib.Path) -> str | None:
  """Why the checkpoint in ``directory`` is damaged, or None if its seal holds or it has none."""
  seal = directory / CHECKSUMS_FILE
  if not seal.exists():
    return None
  try:
    expected = json.loads(seal.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError):
    return f"its {CHECKSUMS_FILE} is not readable"
  actual = file_checksums(directory)
  for name, digest in expected.items():
    if name not in actual:
      return f"its file {name} is missing"
    if actual[name] != digest:
      return f"its file {name} does not match its checksum"
  return None


class _RaisedAgain(logging.Filter):
  """Drops Orbax's logged tracebacks: Orbax raises those errors to the caller too.

  A failed background save (a full disk) is otherwise printed by every
  thread that saw it, hundreds of lines before the caller gets to say in
  one sentence what happened.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.exc_info and f"{os.sep}orbax{os.sep}" in record.pathname)


class Checkpointer:
  """A thin wrapper over ``orbax.checkpoint.CheckpointManager``."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3,
               read_only: bool = False):
    """``read_only``: another run's checkpoints (damaged ones are skipped, not moved).

    While it is open, Orbax's logged tracebacks are dropped (``_RaisedAgain``);
    ``close`` removes that filter again.
    """
    self._quiet = _RaisedAgain()
    logging.getLogger("absl").addFilter(self._quiet)
    self.directory = pathlib.Path(os.path.abspath(directory))
    self.read_only = read_only
    self._saving: int | None = None
    absl = logging.getLogger("absl")
    level = absl.level
    if read_only:  # Orbax warns that it will not save: that is the point.
      absl.setLevel(logging.ERROR)
    try:
      self._manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=None if read_only else max_to_keep,
              save_interval_steps=0 if read_only else 1,
              create=not read_only, read_only=read_only,
              enable_async_checkpointing=True,
              async_options=ocp.AsyncOptions(
                  post_finalization_callback=self._seal)))
    finally:
      absl.setLevel(level)

  def _seal(self) -> None:
    """Writes the checksums of the save in flight into it, before Orbax commits it."""
    if jax.process_index() != 0:
      return
    tmp = self.directory / f"{self._saving}{ocp.path.step.TMP_DIR_SUFFIX}"
    (tmp / CHECKSUMS_FILE).write_text(json.dumps(file_checksums(tmp), indent=1))

  def save(self, step: int, state: Any, meta: dict[str, Any] | None = None):
    """Starts saving ``state`` (any pytree) and JSON ``meta`` as checkpoint ``step``.

    Raises ``OSError`` (``ENOSPC``) before writing anything when the file
    system has less room than the state's bytes: a save that fails half
    way makes Orbax print a traceback for every write still in flight.
    """
    self._manager.wait_until_finished()
    needed = sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(state))
    if shutil.disk_usage(self.directory).free < needed:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.directory))
    self._saving = step
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        meta=ocp.args.JsonSave(meta or {})))

  def wait(self):
    """Blocks until every started save is on disk."""
    self._manager.wait_until_finished()

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def newest_intact(self) -> tuple[int, dict[str, Any]] | None:
    """``(step, meta)`` of the newest intact checkpoint; None when there is none at all.

    Damaged checkpoints (a broken seal, or no seal and unreadable) are moved
    aside on the way, each with a line on stderr; when none is intact,
    ``ConfigError`` says why each was refused.
    """
    refused = []
    for step in sorted(self._manager.all_steps(), reverse=True):
      why = damage(self.directory / str(step))
      if why is None:
        try:
          return step, self._restore(step, meta=ocp.args.JsonRestore())["meta"]
        except Exception as e:  # pylint: disable=broad-except
          why = f"its meta cannot be read ({_first_line(e)})"
      refused.append(f"step {step} ({why})")
      if self.read_only:
        print(f"checkpoint at step {step} skipped: {why}", file=sys.stderr)
      else:
        self._move_aside(step, why)
    if refused:
      moved = ("" if self.read_only else f"; they were moved to {DAMAGED_DIR}/, "
               "so start again with another option workdir or without option "
               "resume")
      raise ConfigError(f"no intact checkpoint in {str(self.directory)!r}: "
                        + "; ".join(refused) + moved)
    return None

  def restore_latest(self, like: Any = None) -> tuple[Any, dict[str, Any]] | None:
    """The newest intact ``(state, meta)`` (see ``newest_intact``); None when there is no checkpoint."""
    found = self.newest_intact()
    if found is None:
      return None
    step, meta = found
    return self.restore(step, like), meta

  def restore(self, step: int, like: Any = None) -> Any:
    """The state of checkpoint ``step``.

    It takes the structure of ``like`` (e.g. a fresh train state); without
    ``like`` it comes back as saved: nested dicts of numpy arrays.
    """
    abstract = (None if like is None else
                jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
    return self._restore(step, state=ocp.args.StandardRestore(abstract))["state"]

  def _restore(self, step: int, **items) -> dict[str, Any]:
    return self._manager.restore(step, args=ocp.args.Composite(**items))

  def _move_aside(self, step: int, why: str) -> None:
    """Moves checkpoint ``step`` to ``damaged_checkpoints/`` (process 0), saying why."""
    if jax.process_index() == 0:
      target = self.directory.parent / DAMAGED_DIR / str(step)
      suffix = 1
      while target.exists():
        target = target.with_name(f"{step}.{suffix}")
        suffix += 1
      target.parent.mkdir(exist_ok=True)
      shutil.move(self.directory / str(step), target)
      print(f"checkpoint at step {step} skipped: {why}; moved to "
            f"{target}", file=sys.stderr)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"dlcore: moved {step} aside")
    self._manager.reload()

  def remove_unfinished(self) -> None:
    """Deletes the temporary directories of saves that did not complete."""
    if jax.process_index() == 0:
      for tmp in self.directory.glob(f"*{ocp.path.step.TMP_DIR_SUFFIX}*"):
        shutil.rmtree(tmp, ignore_errors=True)

  def close(self):
    """Finishes the saves in flight, releases the manager and the log filter."""
    try:
      self._manager.wait_until_finished()
      self._manager.close()
    finally:
      logging.getLogger("absl").removeFilter(self._quiet)


def _first_line(error: Exception) -> str:
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
