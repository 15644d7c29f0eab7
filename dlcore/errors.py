"""Errors a user can act on.

A ``ConfigError`` carries one sentence that names the problem and the valid
choices; the experiment scripts print it without a traceback and exit with
status 2 (divergence: 3; a full disk: 74; a signal: 75). Library messages name options as
``option NAME`` (its config field); the command line shows them as flags.
Anything else is a bug and keeps its traceback.

A divergence names its cause only when it knows it (``divergence_cause``):
a learning rate is suggested only when the state and the data were finite.
"""

from typing import Any

import numpy as np


class ConfigError(ValueError):
  """Bad input: an unknown name, an inconsistent dataset, an unusable workdir."""


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; ``step`` is the first bad step (1-based).

  A step that is a compiled chunk of many (an RL chunk of environment
  steps) is known only as a range: ``step`` to ``last_step``. ``cause``
  (from ``divergence_cause``) says why, where it is known.
  """

  def __init__(self, step: int, name: str = "loss", last_step: int | None = None,
               cause: str | None = None):
    self.step = step
    where = (f"at step {step}" if last_step is None or last_step == step
             else f"within steps {step} to {last_step}")
    super().__init__(
        f"{name} became NaN or infinite {where}"
        + (f" {cause}" if cause else "")
        + "; training stopped and the last good checkpoint was kept")


def first_non_finite(tree: Any) -> str | None:
  """The path (``params/Dense_0/kernel``) of the first float leaf of ``tree`` holding NaN or infinity.

  None when every float leaf is finite (integer leaves, keys and None are
  skipped). Device arrays are reduced on their devices: one scalar each
  comes to the host.
  """
  # Imported here: the command line's sentences need no JAX.
  import jax  # pylint: disable=import-outside-toplevel
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not np.issubdtype(dtype, np.inexact):
      continue
    if not bool(jax.numpy.isfinite(leaf).all()):
      return jax.tree_util.keystr(path, simple=True, separator="/")
  return None


def update_options(config: dict[str, Any] | None, prefix: str = ""
                   ) -> list[str]:
  """The options of ``config`` (an experiment's dict) that scale its updates, with their values.

  Every optimizer section (a dict with ``lr``) gives its learning rate,
  and its weight decay and learning-rate multipliers when set: ``option
  optimizer.lr 0.001``, ``option g_optimizer.weight_decay 1e+30``.
  """
  found = []
  for name, value in (config or {}).items():
    if not isinstance(value, dict):
      continue
    if "lr" in value and "weight_decay" in value:
      section = f"{prefix}{name}"
      found.append(f"option {section}.lr {value['lr']:g}")
      if value["weight_decay"]:
        found.append(f"option {section}.weight_decay "
                     f"{value['weight_decay']:g}")
      if value.get("lr_mult"):
        found.append(f"option {section}.lr_mult "
                     f"{' '.join(value['lr_mult'])}")
    else:
      found += update_options(value, f"{prefix}{name}.")
  return found


def divergence_cause(state_leaf: str | None, start_step: int,
                     batch_leaf: str | None,
                     suspects: list[str] | None = None) -> str:
  """The clause ``NonFiniteLossError(cause=...)`` adds: what was at fault.

  Args:
    state_leaf: ``first_non_finite`` of the state training started from.
    start_step: the step that state was at (0: the initialisation; else a
      restored checkpoint).
    batch_leaf: ``first_non_finite`` of the first bad step's batch (None
      when finite or when the step takes no batch).
    suspects: the options that scale the updates (``update_options``),
      named when the state and data were finite.
  """
  if state_leaf is not None:
    origin = ("the initial state" if start_step == 0 else "the state restored "
              f"from the checkpoint of step {start_step}")
    return (f"because {origin} already held NaN or infinite values (in "
            f"{state_leaf}), not because of the learning rate")
  if batch_leaf is not None:
    return (f"because its batch held NaN or infinite values (in "
            f"{batch_leaf}): the data is at fault, not the learning rate")
  if suspects:
    return ("from a finite state and finite data, so the updates diverged: "
            "lower " + ", ".join(suspects) + ", or clip the gradients "
            "(clip_norm)")
  return ("from a finite state and finite data, so training diverged: a lower "
          "learning rate or gradient clipping (option optimizer.clip_norm) "
          "may help")


class Preempted(RuntimeError):
  """A signal (SIGTERM, SIGINT) stopped training after ``step``; a checkpoint holds it."""

  def __init__(self, step: int, signal_name: str, workdir: str):
    self.step = step
    super().__init__(
        f"{signal_name} received: stopped after step {step} and saved a "
        f"checkpoint in {workdir!r}; run the same command with option resume "
        "to continue exactly where it stopped")


class Interrupted(KeyboardInterrupt):
  """A signal stopped the script outside training, or a second one during it.

  A ``KeyboardInterrupt``, so that no ``except Exception`` on its way out
  (a data loader's, an Orbax thread's) turns it into something else.
  """

  def __init__(self, signal_name: str, during_training: bool = False):
    super().__init__(
        f"a second {signal_name} stopped training at once; the last saved "
        "checkpoint is intact: run the same command with option resume to "
        "continue from it" if during_training else
        f"{signal_name} received before training started: stopped, nothing "
        "had been saved yet; run the same command again to start")


class DiskFull(OSError):
  """A write failed for lack of space; the checkpoints before it are intact."""

  def __init__(self, workdir: str, last_step: int | None):
    kept = ("no checkpoint had been saved" if last_step is None else
            f"the checkpoint at step {last_step} is intact")
    super().__init__(
        f"no space left on the device of {workdir!r}: training stopped, "
        f"{kept} and no partial checkpoint was left; free some space and "
        "run the same command with option resume")
