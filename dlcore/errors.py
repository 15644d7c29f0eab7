"""Errors a user can act on.

A ``ConfigError`` carries one sentence that names the problem and the valid
choices; the experiment scripts print it without a traceback and exit with
status 2 (divergence: 3; a full disk: 74; preemption: 75). Library messages name options as
``option NAME`` (its config field); the command line shows them as flags.
Anything else is a bug and keeps its traceback.
"""


class ConfigError(ValueError):
  """Bad input: an unknown name, an inconsistent dataset, an unusable workdir."""


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; ``step`` is the first bad step (1-based).

  A step that is a compiled chunk of many (an RL chunk of environment
  steps) is known only as a range: ``step`` to ``last_step``.
  """

  def __init__(self, step: int, name: str = "loss", last_step: int | None = None):
    self.step = step
    where = (f"at step {step}" if last_step is None or last_step == step
             else f"within steps {step} to {last_step}")
    super().__init__(
        f"{name} became NaN or infinite {where}; training stopped and "
        "the last good checkpoint was kept")


class Preempted(RuntimeError):
  """A signal (SIGTERM, SIGINT) stopped training after ``step``; a checkpoint holds it."""

  def __init__(self, step: int, signal_name: str, workdir: str):
    self.step = step
    super().__init__(
        f"{signal_name} received: stopped after step {step} and saved a "
        f"checkpoint in {workdir!r}; run the same command with option resume "
        "to continue exactly where it stopped")


class DiskFull(OSError):
  """A write failed for lack of space; the checkpoints before it are intact."""

  def __init__(self, workdir: str, last_step: int | None):
    kept = ("no checkpoint had been saved" if last_step is None else
            f"the checkpoint at step {last_step} is intact")
    super().__init__(
        f"no space left on the device of {workdir!r}: training stopped, "
        f"{kept} and no partial checkpoint was left; free some space and "
        "run the same command with option resume")
